/* openapi_validate.h — check JSON against a schema of an OpenAPI 3.0 document (tally's subset).
 *
 * Supported schema keywords: type (object, array, string, integer, number,
 * boolean), properties, required, items, enum, allOf, anyOf, oneOf,
 * additionalProperties (false or a schema), nullable, and $ref to any local
 * JSON pointer ("#/components/schemas/NAME"). Other keywords are ignored.
 *
 * Formats that are checked:
 *   string  int64 / uint64  a decimal integer in range, no '+', no blanks
 *                           (the reference sends money and counts this way)
 *   string  date-time       RFC 3339, e.g. 2026-11-26T17:00:00Z or ...+02:00
 *   string  uuid            8-4-4-4-12 hex digits
 *   string  byte            base64, standard alphabet, padded
 *   integer int32           within [-2^31, 2^31 - 1]
 * A schema saying type integer (format int64) wants a JSON integer, never a
 * string, and type string (format int64) wants a string, never a number:
 * the type decides, as on the wire. Other formats (double, boolean,
 * hostname...) are not checked.
 *
 * Integers must be JSON integers: 3.0 is a number, not an integer.
 */
#ifndef TALLY_TEST_OPENAPI_VALIDATE_H
#define TALLY_TEST_OPENAPI_VALIDATE_H

#include <stddef.h>

#include <jansson.h>

/**
 * @brief Validate instance against a schema of doc.
 * @param doc        the whole OpenAPI document (borrowed).
 * @param schema_ref "#/components/schemas/NAME", any other local JSON pointer
 *                   ("#/paths/..."), or a bare schema NAME.
 * @param instance   the JSON value to check (borrowed).
 * @param err        receives "PATH: reason" for the first violation, PATH
 *                   being a JSONPath of the instance ("$.items[2].name");
 *                   may be NULL.
 * @return 0 when valid; 1 on the first violation; -1 when the schema itself
 *         cannot be used (missing $ref target, unknown type, cycle), with the
 *         reason in err.
 */
int openapi_validate(json_t *doc, const char *schema_ref, json_t *instance, char *err,
                     size_t errlen);

/**
 * @brief Like openapi_validate(), but an object may carry only properties its
 *        schema declares (directly or through allOf) whenever the schema
 *        declares any. Use it to catch misspelt field names in tally's
 *        responses; schemas without properties (maps such as labels, and
 *        schemaEmpty) still accept any keys.
 */
int openapi_validate_strict(json_t *doc, const char *schema_ref, json_t *instance, char *err,
                            size_t errlen);

#endif
