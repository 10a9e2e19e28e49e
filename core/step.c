/* Step lookup and chain builder: maps a `steps:` entry to its type's table
 * through sl_step_registry (transforms/registry.c) and builds one chain per
 * route worker. */
#include "step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const sl_step_type *sl_step_type_find(const char *name)
{
    for (size_t i = 0; sl_step_registry[i]; i++) {
        if (strcmp(sl_step_registry[i]->name, name) == 0)
            return sl_step_registry[i];
    }
    return NULL;
}

void sl_steps_free(sl_step **steps, size_t n)
{
    if (!steps)
        return;
    for (size_t i = 0; i < n; i++) {
        if (steps[i] && steps[i]->type->destroy)
            steps[i]->type->destroy(steps[i]);
        free(steps[i]);
    }
    free(steps);
}

int sl_steps_build(const sl_step_services *svc, sl_metrics *metrics, const sl_route_conf *conf,
                   sl_step ***steps, size_t *n, sl_error *err)
{
    *steps = NULL;
    *n = 0;
    if (conf->n_steps == 0)
        return 0;
    sl_step **chain = calloc(conf->n_steps, sizeof *chain);
    if (!chain)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    char rname[256];
    sl_metrics_escape(conf->name, rname, sizeof rname);
    for (size_t i = 0; i < conf->n_steps; i++) {
        const sl_step_conf *sc = &conf->steps[i];
        const sl_step_type *t = sl_step_type_find(sc->type);
        if (!t) {
            sl_error_set(err, SL_ECONFIG,
                         "%s:%d:%d: routes.%s.steps[%zu]: step type '%s' is not available in "
                         "this build yet",
                         sc->pos.file, sc->pos.line, sc->pos.col, conf->name, i, sc->type);
            goto fail;
        }
        sl_step *s = calloc(1, sizeof *s);
        if (!s) {
            sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        chain[i] = s;
        s->type = t;
        s->conf = sc;
        s->services = svc;
        s->route = conf->name;
        if (metrics) {
            char labels[400];
            snprintf(labels, sizeof labels, "route=\"%s\",step=\"%zu-%s\"", rname, i + 1, t->name);
            s->seconds =
                sl_metrics_histogram(metrics, "sluice_step_seconds",
                                     "Time spent in a route step per message.", labels, NULL, 0);
        }
        if (t->init(s, err) < 0) {
            free(s); /* a failed init leaves nothing to destroy */
            chain[i] = NULL;
            goto fail;
        }
    }
    *steps = chain;
    *n = conf->n_steps;
    return 0;
fail:
    sl_steps_free(chain, conf->n_steps);
    return -1;
}

void sl_steps_set_services(sl_step **steps, size_t n, const sl_step_services *svc)
{
    for (size_t i = 0; steps && i < n; i++)
        steps[i]->services = svc;
}

int sl_step_process(sl_step *s, sl_msg *msg, sl_error *err)
{
    return s->type->process(s, msg, err);
}

int sl_step_process_split(sl_step *s, sl_msg *msg, sl_msg ***more, size_t *n_more, sl_error *err)
{
    *more = NULL;
    *n_more = 0;
    if (s->type->process_split)
        return s->type->process_split(s, msg, more, n_more, err);
    return s->type->process(s, msg, err);
}

void sl_step_observe(sl_step *s, double seconds)
{
    if (s->seconds)
        sl_histogram_observe(s->seconds, seconds);
}

const char *sl_step_type_name(const sl_step *s)
{
    return s->type->name;
}
