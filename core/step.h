/* The step interface: one table of functions per step type (set, filter,
 * lua, json_to_xml, ...), and the builder that turns a route's `steps:` into
 * a chain. Each route worker builds its own chain, so a step's state (a Lua
 * state, a compiled schema) belongs to one thread and needs no lock. */
#ifndef SLUICE_STEP_H
#define SLUICE_STEP_H

#include <stddef.h>

#include "call.h"
#include "config.h"
#include "error.h"
#include "message.h"
#include "metrics.h"

typedef struct sl_step sl_step;

/* What a step did with a message. */
typedef enum {
    SL_STEP_OK = 0,    /* the message (changed in place) goes on */
    SL_STEP_DROP = 1,  /* the message is dropped (filtered out) */
    SL_STEP_FAIL = 2,  /* permanent failure: err says why; dead letter */
    SL_STEP_RETRY = 3, /* transient failure: err says why; the route retries the
                        * message (from its first step) with its backoff and
                        * dead-letters it after max_attempts */
} sl_step_rc;

/* What core offers steps to reach the outside. Handed to every step of a
 * route worker (sl_steps_set_services); tests and `sluice test` hand their
 * own. */
typedef struct sl_step_services sl_step_services;
struct sl_step_services {
    /* Calls the connector named `connector` once with req, through that
     * connector's circuit breaker: fills *resp (the caller frees it with
     * sl_call_resp_free, whatever the result) and returns resp->result:
     * SL_OK; SL_RETRY when transient (timeout, 5xx, breaker open: error
     * "circuit open"); SL_FAIL when permanent or when there is no connector
     * by that name that takes calls. Never retries, never sleeps beyond the
     * connector's timeout. Called from route worker threads concurrently. */
    int (*call)(const sl_step_services *svc, const char *connector, const sl_call_req *req,
                sl_call_resp *resp);
    void *arg; /* for call */
};

typedef struct sl_step_type {
    const char *name; /* the key in `steps:` */
    /* For the reference (core/config.h): one line saying what the step does;
     * the keys its settings map allows (NULL-terminated) and their
     * documentation; or, for a step whose setting is one scalar, value
     * documents it (key NULL) and conf_keys is NULL. */
    const char *summary;
    const char *const *conf_keys;
    const sl_conf_doc *conf_doc;
    const sl_conf_doc *value;
    /* Checks the step's settings n (the value under the type key, any kind)
     * and parses them into st->priv. Records errors in r (core/config.h);
     * path is "routes.R.steps[I].TYPE". Optional: without it the settings are
     * not checked at load. */
    void (*parse_conf)(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path);
    /* Builds s->state from s->conf. Returns -1 with err on a bad setting. */
    int (*init)(sl_step *s, sl_error *err);
    /* Transforms msg in place. Returns an sl_step_rc; fills err on FAIL. */
    int (*process)(sl_step *s, sl_msg *msg, sl_error *err);
    /* Frees s->state. Optional. */
    void (*destroy)(sl_step *s);
    /* Optional, for steps that can split one message into several: as
     * process, and on SL_STEP_OK also fills *more with the messages that
     * follow msg (a malloc'd array the caller owns; NULL and 0 for none). */
    int (*process_split)(sl_step *s, sl_msg *msg, sl_msg ***more, size_t *n_more, sl_error *err);
} sl_step_type;

struct sl_step {
    const sl_step_type *type;
    const sl_step_conf *conf;
    const char *route;
    void *state;
    sl_histogram *seconds;            /* sluice_step_seconds{route,step} */
    const sl_step_services *services; /* may be NULL: calls then fail */
};

/* Every step type built in, NULL-terminated, in the order `sluice check`
 * lists them. Defined outside core, in transforms/registry.c. */
extern const sl_step_type *const sl_step_registry[];

/* Returns the table for a step type name, or NULL. */
const sl_step_type *sl_step_type_find(const char *name);

/* Parses one step's settings as a config's `steps:` entry `TYPE: node`
 * would be (t's parse_conf), outside a config file: for tests and tools
 * that build a step by hand. Sets st->type and st->node; st->pos is the
 * caller's. st->priv is allocated from pool (free with sl_pool_free after
 * the step). node NULL: the type's defaults (priv stays NULL). Returns 0, or
 * -1 with err holding the first error as sl_config_load reports it
 * ("FILE:LINE:COL: ..."). */
int sl_step_conf_parse(const sl_step_type *t, sl_step_conf *st, const sl_node *node, sl_pool *pool,
                       sl_error *err);

/* Builds the chain of route conf's steps into a malloc'd array (*steps,
 * *n). Each step gets svc (its way to call connectors; may be NULL: calls
 * then fail; must outlive the chain) before its init runs, and, when metrics
 * is not NULL, its sluice_step_seconds histogram. Returns -1 with err (naming the step's
 * file:line:col) when a step type is unknown or a step's init fails; nothing is left allocated
 * then. */
int sl_steps_build(const sl_step_services *svc, sl_metrics *metrics, const sl_route_conf *conf,
                   sl_step ***steps, size_t *n, sl_error *err);

/* Frees a chain from sl_steps_build. steps may be NULL. */
void sl_steps_free(sl_step **steps, size_t n);

/* Hands svc (which must outlive the chain; may be NULL) to every step of a
 * chain from sl_steps_build. */
void sl_steps_set_services(sl_step **steps, size_t n, const sl_step_services *svc);

/* Runs one step on msg: an sl_step_rc. */
int sl_step_process(sl_step *s, sl_msg *msg, sl_error *err);

/* Runs one step on msg, letting it split: on SL_STEP_OK, *more holds the
 * messages that follow msg (malloc'd array of owned messages; free each
 * with sl_msg_free and the array with free), or NULL with *n_more 0. */
int sl_step_process_split(sl_step *s, sl_msg *msg, sl_msg ***more, size_t *n_more, sl_error *err);

/* Records one run's duration in sluice_step_seconds. */
void sl_step_observe(sl_step *s, double seconds);

/* The step's type name ("set", "lua", ...). */
const char *sl_step_type_name(const sl_step *s);

#endif
