"""The partition's parameters with every default of the JSON schemas
applied, at every depth: the schemas are the one home of a default value.

SlapOS's validator applies a property's default only where its object is
given: the defaults inside a default (``greylisting: {}`` has no
``greylisting-delay``), inside the entries of an open object (a
``proxy-map`` entry's ``port``, a ``topology`` node's ``state``) and inside
list items are left out. ``with_defaults`` adds them, so that no template
and no module restates a default.
"""
import copy
import urllib.parse


def with_defaults(schema, value, load, base=''):
    """``value`` (changed in place, and returned) with the defaults of
    ``schema`` applied. ``load(url)`` returns the JSON document at ``url``
    for a ``$ref`` to another file; ``base`` is the URL of ``schema``'s
    document (its ``$id`` when it has one)."""
    schema, base = resolved(schema, load, base)
    if isinstance(value, dict):
        properties = schema.get('properties', {})
        for key, sub in properties.items():
            sub, sub_base = resolved(sub, load, base)
            if key not in value and 'default' in sub:
                value[key] = copy.deepcopy(sub['default'])
            if key in value:
                value[key] = with_defaults(sub, value[key], load, sub_base)
        extra = schema.get('additionalProperties')
        if isinstance(extra, dict):
            for key in value:
                if key not in properties:
                    value[key] = with_defaults(extra, value[key], load, base)
        for branch in chosen_branches(schema, value, load, base):
            with_defaults(branch, value, load, base)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        for i, item in enumerate(value):
            value[i] = with_defaults(schema['items'], item, load, base)
    return value


def chosen_branches(schema, value, load, base):
    """The subschemas of ``allOf``, and the ``oneOf``/``anyOf`` branches
    whose required properties ``value`` all has (the branches of this
    bundle's schemas differ by what they require)."""
    branches = list(schema.get('allOf', ()))
    for keyword in ('oneOf', 'anyOf'):
        for branch in schema.get(keyword, ()):
            resolved_branch, _ = resolved(branch, load, base)
            if set(resolved_branch.get('required', ())) <= set(value):
                branches.append(branch)
    return branches


def resolved(schema, load, base):
    """``(schema, base)`` with ``$ref`` followed (``file.json#/pointer``,
    relative to ``base``, or ``#/pointer`` in the same document); the
    keywords beside a ``$ref`` (its ``default``) win over the target's."""
    while isinstance(schema, dict) and '$ref' in schema:
        url = urllib.parse.urljoin(base, schema['$ref'])
        document_url, _, pointer = url.partition('#')
        document = load(document_url)
        base = document.get('$id', document_url) if isinstance(
            document, dict) else document_url
        target = document
        for part in filter(None, pointer.split('/')):
            target = target[part.replace('~1', '/').replace('~0', '~')]
        siblings = {k: v for k, v in schema.items() if k != '$ref'}
        schema = dict(target, **siblings)
    return schema, base
