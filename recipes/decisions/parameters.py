"""What the JSON schemas say of a value, beyond what the validator checks:
the schemas are the one home of a default, of the keys a release accepts
and ignores, and of the type of each published value.

- ``with_defaults``: every default, at every depth. SlapOS's validator
  applies a property's default only where its object is given: the defaults
  inside a default (``greylisting: {}`` has no ``greylisting-delay``),
  inside the entries of an open object (a ``proxy-map`` entry's ``port``, a
  ``topology`` node's ``state``) and inside list items are left out.
- ``ignored_keys``: the keys of an object that upstream's schema leaves open
  and this release does not use (their schema is ``$defs/ignored`` of
  ``software/stack/definitions.json``), and the keys of upstream's that
  this release names and ignores, with why: accepted, named in the
  instance log.
- ``format_errors``: the values whose ``format`` the validator does not
  check (``nameserver``), checked by the function that decides it.
- ``typed``: connection parameters given as text (buildout options) as the
  values their response schema says (integers, lists, booleans).
"""
import copy
import json
import urllib.parse

from .dns import nameserver_error

# format -> why a value is not of it (None when it is)
FORMAT_CHECKS = {'nameserver': nameserver_error}


def walk(schema, value, load, base='', path=''):
    """``(path, schema, value, base)`` of ``value`` and of everything in it
    that ``schema`` describes, parents first (``path``:
    ``proxy-map.s.port``, ``nameservers[0]``; '' for ``value`` itself;
    ``schema`` with its ``$ref`` followed, found in the document at
    ``base``). A caller may complete an object when it is yielded: its keys
    are read after. ``load(url)`` returns the JSON document at ``url`` for a
    ``$ref`` to another file; ``base`` is the URL of ``schema``'s document
    (its ``$id`` when it has one)."""
    schema, base = resolved(schema, load, base)
    yield path, schema, value, base
    if isinstance(value, dict):
        properties = schema.get('properties', {})
        extra = schema.get('additionalProperties')
        for key in list(value):
            sub = properties[key] if key in properties else extra
            if isinstance(sub, dict):
                yield from walk(sub, value[key], load, base,
                                '%s.%s' % (path, key) if path else key)
        for branch in chosen_branches(schema, value, load, base):
            yield from walk(branch, value, load, base, path)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        for i, item in enumerate(value):
            yield from walk(schema['items'], item, load, base,
                            '%s[%d]' % (path, i))


def with_defaults(schema, value, load, base=''):
    """``value`` (changed in place, and returned) with the defaults of
    ``schema`` applied (``walk`` says what ``load`` and ``base`` are)."""
    for _, node, found, node_base in walk(schema, value, load, base):
        if isinstance(found, dict):
            for key, sub in node.get('properties', {}).items():
                sub, _ = resolved(sub, load, node_base)
                if key not in found and 'default' in sub:
                    found[key] = copy.deepcopy(sub['default'])
    return value


def ignored_keys(schema, value, load, base=''):
    """``[(path, note)]`` of the keys of ``value`` that the schema accepts
    and ignores (``"ignored": true``), in order: a key an open object
    accepts, or a key of upstream's named with its own ignored schema,
    whose ``description`` is the note (empty otherwise)."""
    found = []
    for path, node, item, node_base in walk(schema, value, load, base):
        if not isinstance(item, dict):
            continue
        properties = node.get('properties', {})
        extra = node.get('additionalProperties')
        open_ignored = isinstance(extra, dict) and \
            resolved(extra, load, node_base)[0].get('ignored')
        for key in item:
            if key in properties:
                declared = properties[key]
                if not (isinstance(declared, dict) and resolved(
                        declared, load, node_base)[0].get('ignored')):
                    continue
                note = declared.get('description', '')
            elif open_ignored:
                note = ''
            else:
                continue
            found.append(('%s.%s' % (path, key) if path else key, note))
    return found


def format_errors(schema, value, load, base=''):
    """``path: 'value' why`` for each value whose ``format`` is one of
    ``FORMAT_CHECKS`` and refuses it."""
    errors = []
    for path, node, item, _ in walk(schema, value, load, base):
        check = FORMAT_CHECKS.get(node.get('format'))
        why = check(item) if check and isinstance(item, str) else None
        if why:
            errors.append('%s: %r %s' % (path, item, why))
    return errors


def typed(schema, values, load, base=''):
    """``values`` (text, as buildout options hold them) as the JSON values
    the properties of ``schema`` say: ``integer``, ``number``, ``boolean``,
    ``array`` and ``object`` are decoded from JSON; strings, and keys the
    schema does not describe, stay text. Raises ValueError naming the key
    whose text is not of its type."""
    schema, base = resolved(schema, load, base)
    result = {}
    for key, text in values.items():
        sub, _ = resolved(schema.get('properties', {}).get(key, {}), load,
                          base)
        kind = sub.get('type')
        if kind in (None, 'string') or not isinstance(text, str):
            result[key] = text
            continue
        try:
            result[key] = json.loads(text)
        except ValueError:
            result[key] = None
        python = {'integer': int, 'number': (int, float), 'boolean': bool,
                  'array': list, 'object': dict}[kind]
        if not isinstance(result[key], python) or (
                kind != 'boolean' and isinstance(result[key], bool)):
            raise ValueError('%s = %r is not a JSON %s, as its schema says'
                             % (key, text, kind))
    return result


def response_schema(description, software_type, shared, load, base):
    """``(schema, its URL)`` of what an instance (``shared``: a shared
    instance) of ``software_type`` publishes, as ``software.cfg.json``
    (``description``, at ``base``) names it."""
    for entry in description['software-type'].values():
        if entry['software-type'] == software_type and \
                bool(entry.get('shared')) == shared:
            url = urllib.parse.urljoin(base, entry['response'])
            return load(url), url
    raise KeyError('software.cfg.json has no %s%s software type'
                   % ('shared ' if shared else '', software_type))


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
