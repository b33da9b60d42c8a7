from recipes.instance.slapconfiguration import serialise


def test_strings_stay_and_the_rest_becomes_json():
    assert serialise('fd00::2') == 'fd00::2'
    assert serialise(10025) == '10025'
    assert serialise(True) == 'true'
    assert serialise({'fd00::3', 'fd00::2'}) == '["fd00::2", "fd00::3"]'
    assert serialise({'b': [1], 'a': None}) == '{"a": null, "b": [1]}'
