"""Data written into the text of a buildout profile (the type profiles are
Jinja2 templates that render the partition's parameters into buildout)."""
import json


def json_value(value):
    """``value`` as one line of JSON that buildout takes literally.

    zc.buildout substitutes every ``${...}`` in an option and has no escape
    for it (``$$`` stays ``$$``), so a ``{`` that follows a ``$`` is written
    as the JSON escape ``\\u007b``, which decodes to the same string."""
    return json.dumps(value, sort_keys=True).replace('${', '$\\u007b')
