/*
 * target.c: per-target state, keyed by "provider/model". This is the one
 * place that holds what the daemon knows about a target; rate budgets,
 * cooldowns and breakers hang off struct target.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define TARGET_HASH 256

static struct target *target_table[TARGET_HASH];
static struct target *target_list;
static struct target **target_tail = &target_list;
static unsigned target_count;

static unsigned
target_hash(const char *provider, const char *model)
{
	unsigned h = 5381;
	const char *p;

	for (p = provider; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	h = h * 33 + '/';
	for (p = model; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	return h % TARGET_HASH;
}

struct target *
target_get(const char *provider, const char *model)
{
	unsigned h = target_hash(provider, model);
	size_t plen = strlen(provider);
	struct target *t;

	for (t = target_table[h]; t != NULL; t = t->hnext) {
		if (strncmp(t->name, provider, plen) == 0 &&
		    t->name[plen] == '/' && strcmp(t->name + plen + 1, model) == 0)
			return t;
	}
	/* Model names come from clients: bound what they can make us keep. */
	if (target_count >= TARGET_MAX)
		return NULL;
	target_count++;
	t = xcalloc(1, sizeof *t);
	xasprintf(&t->name, "%s/%s", provider, model);
	t->provider = xstrdup(provider);
	t->hnext = target_table[h];
	target_table[h] = t;
	*target_tail = t;
	target_tail = &t->next;
	return t;
}

struct target *
target_first(void)
{
	return target_list;
}

void
target_free_all(void)
{
	struct target *t, *next;

	for (t = target_list; t != NULL; t = next) {
		next = t->next;
		free(t->name);
		free(t->provider);
		free(t);
	}
	memset(target_table, 0, sizeof target_table);
	target_count = 0;
	target_list = NULL;
	target_tail = &target_list;
}
