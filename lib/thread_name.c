/* Thread names for process listings and profiles (see thread_name.h). */
#include "thread_name.h"

#include <stdarg.h>
#include <stdio.h>

void sl_thread_name(pthread_t t, const char *fmt, ...)
{
    char name[16]; /* the kernel's TASK_COMM_LEN */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    (void)pthread_setname_np(t, name);
}
