import json
import os
import sys

from recipes.instance import profile_text
from recipes.instance.profile_text import json_value


def test_json_for_buildout_never_holds_a_substitution_and_decodes_the_same():
    value = {'password': 'pa$${word}', 'hosts': ['fd00::2'], 'text': 'a\nb $x'}
    text = json_value(value)
    assert '${' not in text and '\n' not in text
    assert json.loads(text) == value


def test_source_files_are_the_modules_files_without_importing_them():
    sys.modules.pop('recipes.programs.spam_filter', None)
    files = profile_text.source_files('recipes.programs.spam_filter',
                                      'recipes.decisions.greylisting').split(' ')
    assert [os.path.basename(f) for f in files] == ['spam_filter.py',
                                                    'greylisting.py']
    assert all(os.path.isabs(f) and os.path.exists(f) for f in files)
    assert 'recipes.programs.spam_filter' not in sys.modules
