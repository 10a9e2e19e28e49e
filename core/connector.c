/* Connector lookup: maps a config `type:` to the connector's table of
 * functions through sl_connector_registry (connectors/registry.c), fills
 * send results, and reads a connector's env (what it may use of the gateway). */
#include "connector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"

const sl_connector_type *sl_connector_type_find(const char *name)
{
    for (size_t i = 0; sl_connector_registry[i]; i++) {
        if (strcmp(sl_connector_registry[i]->name, name) == 0)
            return sl_connector_registry[i];
    }
    return NULL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *sl_connector_type_list(char *buf, size_t size)
{
    const char *names[64] = {0};
    size_t n = 0, used = 0;
    for (size_t i = 0; sl_connector_registry[i] && n < 64; i++)
        names[n++] = sl_connector_registry[i]->name;
    qsort(names, n, sizeof *names, cmp_name);
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        int k = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
    return buf;
}

void sl_send_result_set(sl_send_result *r, sl_result res, int status, const char *fmt, ...)
{
    r->result = res;
    r->status = status;
    r->held_back = false;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
    } else {
        r->error[0] = '\0';
    }
}

sl_metrics *sl_connector_metrics(const sl_connector *c)
{
    return c->env ? c->env->metrics : NULL;
}

const sl_gateway_conf *sl_connector_settings(const sl_connector *c)
{
    return c->env && c->env->conf ? &c->env->conf->gw : NULL;
}

int sl_connector_take_listener(const sl_connector *c, const char *listen)
{
    return c->env && c->env->rt ? sl_runtime_take_listener(c->env->rt, listen) : -1;
}

void sl_connector_release_listener(const sl_connector *c, const char *listen, int fd)
{
    if (c->env && c->env->rt && c->env->reloading && atomic_load(c->env->reloading))
        sl_runtime_put_listener(c->env->rt, listen, fd); /* for the next generation */
    else
        close(fd);
}

bool sl_connector_reloading(const sl_connector *c)
{
    return c->env && c->env->rt && c->env->reloading && atomic_load(c->env->reloading);
}

void sl_connector_keep(const sl_connector *c, const char *key, void *obj, void (*drop)(void *))
{
    if (sl_connector_reloading(c))
        sl_runtime_keep(c->env->rt, key, obj, drop); /* for the next generation */
    else
        drop(obj);
}

void *sl_connector_take_kept(const sl_connector *c, const char *key)
{
    return c->env && c->env->rt ? sl_runtime_take_kept(c->env->rt, key) : NULL;
}
