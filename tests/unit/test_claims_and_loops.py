"""recipes.decisions.claims and recipes.decisions.loops."""
import random

from recipes.decisions.claims import first_claims
from recipes.decisions.loops import find_loops


# -- claims -------------------------------------------------------------------
def test_the_first_claimant_in_the_masters_order_wins_a_free_name():
    asks = [('_b', 'x@example.com'), ('_a', 'x@example.com'),
            ('_a', 'y@example.com')]
    assert first_claims(asks, {}) == {'x@example.com': '_b',
                                      'y@example.com': '_a'}


def test_a_claim_is_kept_while_its_claimant_asks_whatever_the_order():
    previous = {'x@example.com': '_a'}
    asks = [('_b', 'x@example.com'), ('_a', 'x@example.com')]
    assert first_claims(asks, previous) == {'x@example.com': '_a'}
    # a generator, as the callers give it, is read once only
    assert first_claims(iter(asks), previous) == {'x@example.com': '_a'}


def test_a_claim_no_longer_asked_for_goes_to_the_next_claimant():
    previous = {'x@example.com': '_a', 'old@example.com': '_c'}
    # _a now asks for another name; _c is gone
    asks = [('_b', 'x@example.com'), ('_a', 'z@example.com')]
    assert first_claims(asks, previous) == {'x@example.com': '_b',
                                            'z@example.com': '_a'}
    assert previous == {'x@example.com': '_a', 'old@example.com': '_c'}


def test_a_name_that_is_not_claimable_goes_to_nobody():
    hosted = {'example.com'}

    def claimable(name):
        return name.split('@')[1] in hosted
    asks = [('_a', 'a@example.com'), ('_b', 'b@elsewhere.example')]
    assert first_claims(asks, {}, claimable) == {'a@example.com': '_a'}


def test_an_earlier_claim_outlives_its_name_becoming_unclaimable():
    # a domain removed for a while: its owner keeps the address meanwhile
    asks = [('_b', 'a@example.com'), ('_a', 'a@example.com')]
    assert first_claims(asks, {'a@example.com': '_a'},
                        lambda name: False) == {'a@example.com': '_a'}


# -- loops --------------------------------------------------------------------
def assert_cycle(graph, loop):
    """``loop`` is a cycle of ``graph`` written ``[a, ..., a]``, each node
    once."""
    assert loop[0] == loop[-1]
    assert len(set(loop[:-1])) == len(loop) - 1
    for node, following in zip(loop, loop[1:]):
        assert following in graph[node], (node, following)


def test_no_loop():
    assert find_loops({}) == []
    assert find_loops({'a': ['b', 'c'], 'b': ['c'], 'c': []}) == []
    # one node reached by two paths is no loop
    assert find_loops({'a': ['b', 'c'], 'b': ['d'], 'c': ['d'],
                       'd': []}) == []


def test_a_self_loop():
    assert find_loops({'a': ['a']}) == [['a', 'a']]
    assert find_loops({'x': ['a'], 'a': ['b', 'a'], 'b': []}) == [['a', 'a']]


def test_a_cycle_is_given_once_without_the_chains_leading_to_it():
    graph = {'x': ['c'], 'c': ['a'], 'a': ['b'], 'b': ['c', 'y'], 'y': []}
    assert find_loops(graph) == [['a', 'b', 'c', 'a']]


def test_each_looping_group_gives_one_cycle():
    graph = {'a': ['b'], 'b': ['a'], 'c': ['d'], 'd': ['e'], 'e': ['c'],
             'f': ['f', 'a']}
    loops = find_loops(graph)
    assert sorted(loop[0] for loop in loops) == ['a', 'c', 'f']
    for loop in loops:
        assert_cycle(graph, loop)
    # several cycles through the same nodes: still one group, one loop
    graph = {'a': ['b', 'c'], 'b': ['a', 'c'], 'c': ['a', 'b']}
    (loop,) = find_loops(graph)
    assert_cycle(graph, loop)


def reaches(graph, start):
    seen, todo = set(), [start]
    while todo:
        for n in graph[todo.pop()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_random_graphs_against_reachability():
    # a node is on a cycle iff it reaches itself; the nodes that reach each
    # other form one group, which gives one loop
    rng = random.Random(20240601)
    for _ in range(500):
        nodes = ['n%d' % i for i in range(rng.randint(1, 9))]
        graph = {n: sorted({rng.choice(nodes) for _ in range(
            rng.randint(0, 3))}) for n in nodes}
        reach = {n: reaches(graph, n) for n in nodes}
        groups = {frozenset(m for m in nodes if m in reach[n] and
                            n in reach[m]) for n in nodes if n in reach[n]}
        loops = find_loops(graph)
        assert len(loops) == len(groups), graph
        owners = [next(g for g in groups if loop[0] in g) for loop in loops]
        assert len(set(owners)) == len(loops), graph
        for loop, group in zip(loops, owners):
            assert_cycle(graph, loop)
            assert set(loop) <= group
        # the order the graph is listed in changes no loop (an alias
        # error's text stays the same from run to run)
        shuffled = list(graph.items())
        rng.shuffle(shuffled)
        assert sorted(find_loops(dict(shuffled))) == sorted(loops), graph
