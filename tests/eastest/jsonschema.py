"""A JSON Schema validator for the subset of draft 2020-12 the
repository's schemas use (stdlib only): type, enum, required,
properties, additionalProperties, items, minimum, maximum, minLength and
local $ref to #/$defs/...  Any other keyword is an error, so that a schema
can never silently ask for something this validator skips."""

KNOWN = {"$schema", "$id", "$defs", "$ref", "title", "description", "type",
         "enum", "required", "properties", "additionalProperties", "items",
         "minimum", "maximum", "minLength"}

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: (isinstance(v, (int, float))
                         and not isinstance(v, bool)),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class SchemaError(Exception):
    pass


def validate(instance, schema, root=None, path="$"):
    """Returns the list of violations, empty when the instance is valid."""
    root = schema if root is None else root
    errors = []
    unknown = set(schema) - KNOWN
    if unknown:
        raise SchemaError("unsupported keywords %s at %s"
                          % (sorted(unknown), path))
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise SchemaError("unsupported $ref %s" % ref)
        return validate(instance, root["$defs"][ref[len("#/$defs/"):]],
                        root, path)
    kind = schema.get("type")
    if kind is not None and not TYPES[kind](instance):
        return ["%s: %r is not of type %s" % (path, instance, kind)]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append("%s: %r not in %r" % (path, instance, schema["enum"]))
    if "minimum" in schema and instance < schema["minimum"]:
        errors.append("%s: %r below %r" % (path, instance,
                                           schema["minimum"]))
    if "maximum" in schema and instance > schema["maximum"]:
        errors.append("%s: %r above %r" % (path, instance,
                                           schema["maximum"]))
    if "minLength" in schema and len(instance) < schema["minLength"]:
        errors.append("%s: %r too short" % (path, instance))
    if isinstance(instance, dict):
        for name in schema.get("required", ()):
            if name not in instance:
                errors.append("%s: %s is required" % (path, name))
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, value in instance.items():
            where = "%s.%s" % (path, name)
            if name in properties:
                errors += validate(value, properties[name], root, where)
            elif extra is False:
                errors.append("%s: not allowed" % where)
            elif isinstance(extra, dict):
                errors += validate(value, extra, root, where)
    if isinstance(instance, list) and "items" in schema:
        for i, value in enumerate(instance):
            errors += validate(value, schema["items"], root,
                               "%s[%d]" % (path, i))
    return errors
