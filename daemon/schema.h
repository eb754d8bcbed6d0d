/*
 * schema.h: the compiled schema, shared by schema.c (compile) and
 * schema-check.c (validate) only; every other file sees struct schema as
 * opaque, through llmgated.h. A header of its own because the nodes hold
 * PCRE2 code, and no other file needs pcre2.h.
 */
#ifndef SCHEMA_H
#define SCHEMA_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define SCHEMA_MAX_REFS       64            /* $refs in a row, one value */
#define SCHEMA_MAX_DEPTH      4096          /* nested checks (the stack) */
#define SCHEMA_MAX_STEPS      (1024 * 1024) /* checks per validation */
#define SCHEMA_MAX_QUOTE      240           /* bytes quoted of a branch */
#define SCHEMA_RE_MAX_NEST    64            /* parentheses in a pattern */
#define SCHEMA_RE_MATCH_LIMIT 100000        /* PCRE2 backtracks per match */
#define SCHEMA_RE_HEAP_KIB    8192          /* PCRE2 memory per match */
#define SCHEMA_RE_MAX_MS      250           /* matching, per validation */

enum {
	SCHEMA_T_NULL = 0x01,
	SCHEMA_T_BOOLEAN = 0x02,
	SCHEMA_T_OBJECT = 0x04,
	SCHEMA_T_ARRAY = 0x08,
	SCHEMA_T_NUMBER = 0x10,
	SCHEMA_T_INTEGER = 0x20,
	SCHEMA_T_STRING = 0x40,
};

struct schema_re {
	const char *src;  /* as the schema wrote it, for messages */
	pcre2_code *code; /* NULL until compiled */
};

struct schema_list {
	struct schema_node **v;
	size_t n;
};

struct schema_prop {
	const char *name;
	struct schema_node *node;
};

struct schema_patprop {
	struct schema_re re;
	struct schema_node *node;
};

struct schema_node {
	const json_t *json; /* borrowed from schema->root */
	int boolean;        /* 0 false, 1 true, -1 an object schema */

	unsigned types;     /* 0: any */
	const json_t *type; /* for "expected ..." */
	const json_t *enumv;
	const json_t *constv;

	const json_t *minimum, *maximum, *xminimum, *xmaximum, *multiple;
	long long min_len, max_len; /* -1: unset, for all counts */
	long long min_items, max_items;
	long long min_props, max_props;
	int unique;
	struct schema_re *pattern;

	const json_t *props_json; /* "properties", for membership */
	struct schema_prop *props;
	size_t nprops;
	struct schema_patprop *patprops;
	size_t npatprops;
	struct schema_node *additional;
	const json_t *required;

	struct schema_list prefix;
	struct schema_node *items; /* items after the prefix */

	struct schema_list all, any, one;
	struct schema_node * not ;

	const char *ref;        /* as written */
	const json_t *ref_json; /* what it points at */
	struct schema_node *target;
};

struct schema {
	json_t *root;
	struct schema_node *top;
	struct schema_node **nodes; /* every node, to resolve and free */
	size_t nnodes;
	size_t cap;
};

/* schema.c: for schema-check.c. */
json_t *schema_unconst(const json_t *);
extern pcre2_match_context *schema_re_mc;
extern pcre2_match_data *schema_re_md;

#endif /* SCHEMA_H */
