"""Data written into the text of a buildout profile (the type profiles are
Jinja2 templates that render the partition's parameters into buildout)."""
import importlib.util
import json

# the modules of the policy daemon (recipes.programs.relay_policy), which
# its service's hash restarts it for
POLICY_DAEMON = (
    'recipes.programs.relay_policy', 'recipes.programs.milter',
    'recipes.decisions.greylisting', 'recipes.decisions.spf',
    'recipes.decisions.relay_policy', 'recipes.decisions.header_from',
    'recipes.decisions.size_limits', 'recipes.decisions.names',
    'recipes.decisions.srs', 'recipes.programs.socketmap',
    'recipes.decisions.network', 'recipes.stores.greylist',
    'recipes.stores.accounts', 'recipes.stores.files',
    'recipes.clients.resolver', 'recipes.decisions.dmarc',
    'recipes.stores.database')


def json_value(value):
    """``value`` as one line of JSON that buildout takes literally.

    zc.buildout substitutes every ``${...}`` in an option and has no escape
    for it (``$$`` stays ``$$``), so a ``{`` that follows a ``$`` is written
    as the JSON escape ``\\u007b``, which decodes to the same string."""
    return json.dumps(value, sort_keys=True).replace('${', '$\\u007b')


def source_files(*modules):
    """The files of these modules (found, not imported), for a long-running
    service's ``hash-existing-files``: a new release of its code restarts
    it, as a change of its configuration needs not."""
    return ' '.join(importlib.util.find_spec(module).origin
                    for module in modules)
