"""The embedded SlapOS's download cache (tests/harness.py): the root's
nodes (one per xdist worker) share the dists they download, but each keeps
its own copy of our sdist, whose content changes under the same name: one
node forgetting its copy never takes the file another is installing."""
import os

from tests.harness import MAILBUNDLE_DIST, EmbeddedSlapOS

OURS = 'slapos_mailbundle-0.1.0.tar.gz'
WHEEL = 'click-8.5.1-py3-none-any.whl'


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def test_our_sdist_is_matched_by_the_pattern():
    import fnmatch
    assert fnmatch.fnmatch(OURS, MAILBUNDLE_DIST)
    assert fnmatch.fnmatch('slapos.mailbundle-0.1.0.tar.gz', MAILBUNDLE_DIST)
    assert not fnmatch.fnmatch(WHEEL, MAILBUNDLE_DIST)


def test_a_node_forgetting_its_sdist_leaves_the_others_and_shares_the_rest(
        tmp_path):
    shared, first, second = (tmp_path / name for name in
                             ('shared', 'first', 'second'))
    shared.mkdir()
    for node in (first, second):
        EmbeddedSlapOS._share_dists(str(node), str(shared), changed=False)
    # each node's buildout downloads into its own directory
    write(first / WHEEL, 'a wheel')
    write(first / OURS, 'the first node\'s sdist')
    write(second / OURS, 'the second node\'s sdist')
    # the first node's next build, after the sdist changed
    EmbeddedSlapOS._share_dists(str(first), str(shared), changed=True)
    assert not (first / OURS).exists()
    assert read(second / OURS) == 'the second node\'s sdist'
    assert not (shared / OURS).exists()
    # the wheel went to the shared directory, linked from the first node,
    # and from the second at its next build
    assert read(shared / WHEEL) == 'a wheel'
    assert os.path.islink(first / WHEEL)
    EmbeddedSlapOS._share_dists(str(second), str(shared), changed=False)
    assert read(second / WHEEL) == 'a wheel'
    assert read(second / OURS) == 'the second node\'s sdist'


def test_a_link_to_a_dist_removed_from_the_shared_directory_goes(tmp_path):
    shared, node = tmp_path / 'shared', tmp_path / 'node'
    shared.mkdir()
    write(shared / WHEEL, 'a wheel')
    EmbeddedSlapOS._share_dists(str(node), str(shared), changed=False)
    assert os.path.islink(node / WHEEL)
    os.unlink(shared / WHEEL)
    EmbeddedSlapOS._share_dists(str(node), str(shared), changed=False)
    assert not os.path.lexists(node / WHEEL)


def test_our_sdist_left_in_the_shared_directory_is_not_linked(tmp_path):
    # (an earlier harness put it there)
    shared, node = tmp_path / 'shared', tmp_path / 'node'
    shared.mkdir()
    write(shared / OURS, 'stale')
    EmbeddedSlapOS._share_dists(str(node), str(shared), changed=False)
    assert not os.path.lexists(node / OURS)
