import json

from recipes.profile_text import json_value


def test_json_for_buildout_never_holds_a_substitution_and_decodes_the_same():
    value = {'password': 'pa$${word}', 'hosts': ['fd00::2'], 'text': 'a\nb $x'}
    text = json_value(value)
    assert '${' not in text and '\n' not in text
    assert json.loads(text) == value
