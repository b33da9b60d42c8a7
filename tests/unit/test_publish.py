from recipes.instance.publish import shared_publications as publications


def test_valid_results_and_schema_errors():
    published = publications(
        {'_alice': {'address': 'alice@example.com', 'token': 't'}},
        [{'reference': '_bad', 'parameters': {'address': 'x'},
          'errors': "  $.address: 'x' does not match\n"}])
    assert published == {
        '_alice': {'address': 'alice@example.com', 'token': 't'},
        '_bad': {'error': "invalid parameters: $.address: 'x' does not match"}}
