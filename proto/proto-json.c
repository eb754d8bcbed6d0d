/*
 * proto-json.c: free-form JSON values carried as msgpack, both ways
 * (status bodies, and whatever else travels as JSON).
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "proto.h"

/*
 * Free-form JSON as msgpack. Integers beyond int64 become reals; strings
 * must be UTF-8 (jansson's rule); map keys must be NUL-free strings.
 */
json_t *
proto_unpack_json(const msgpack_object *o, int depth)
{
	json_t *j, *v;
	const char *ks;
	char kbuf[128], *key;
	uint32_t i, n, klen;
	int rc;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64); /* NULL when not finite */
	case MSGPACK_OBJECT_STR:
		/* msgpack-c gives empty strings a NULL pointer. */
		return json_stringn(o->via.str.size == 0 ? "" : o->via.str.ptr,
		    o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return json_stringn(o->via.bin.size == 0 ? "" : o->via.bin.ptr,
		    o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		n = o->via.array.size;
		if (depth < 0 || depth >= PROTO_MAX_DEPTH ||
		    n > PROTO_MAX_ITEMS)
			return NULL;
		j = json_array();
		for (i = 0; i < n; i++) {
			v = proto_unpack_json(&o->via.array.ptr[i], depth + 1);
			if (v == NULL || json_array_append_new(j, v) != 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	case MSGPACK_OBJECT_MAP:
		n = o->via.map.size;
		if (depth < 0 || depth >= PROTO_MAX_DEPTH ||
		    n > PROTO_MAX_ITEMS)
			return NULL;
		j = json_object();
		for (i = 0; i < n; i++) {
			if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
				goto fail;
			ks = o->via.map.ptr[i].key.via.str.ptr;
			klen = o->via.map.ptr[i].key.via.str.size;
			if (klen != 0 && memchr(ks, '\0', klen) != NULL)
				goto fail;
			v = proto_unpack_json(&o->via.map.ptr[i].val,
			    depth + 1);
			if (v == NULL)
				goto fail;
			if (klen < sizeof kbuf) {
				if (klen != 0)
					memcpy(kbuf, ks, klen);
				kbuf[klen] = '\0';
				key = kbuf;
			} else
				key = xstrndup(ks, klen);
			rc = json_object_set_new(j, key, v);
			if (key != kbuf)
				free(key);
			if (rc != 0)
				goto fail;
		}
		return j;
	default:
		return NULL;
	}

fail:
	json_decref(j);
	return NULL;
}

void
proto_pack_json(msgpack_packer *pk, const json_t *j)
{
	const char *key;
	json_t *obj, *v;
	size_t i, n;

	if (j == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		/* jansson iterates non-const objects only. */
		obj = (json_t *)(uintptr_t)j;
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach(obj, key, v) {
			msgpack_pack_str_with_body(pk, key, strlen(key));
			proto_pack_json(pk, v);
		}
		break;
	case JSON_ARRAY:
		n = json_array_size(j);
		msgpack_pack_array(pk, n);
		for (i = 0; i < n; i++)
			proto_pack_json(pk, json_array_get(j, i));
		break;
	case JSON_STRING:
		msgpack_pack_str_with_body(pk, json_string_value(j),
		    json_string_length(j));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		break;
	}
}
