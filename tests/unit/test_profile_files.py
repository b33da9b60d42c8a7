from recipes.software.profile_files import copy_tree, digest, files_under


def test_the_layout_is_kept_and_stale_files_go(tmp_path):
    root = tmp_path / 'checkout'
    (root / 'instance-templates' / 'common' / 'postfix').mkdir(parents=True)
    (root / 'software' / 'stack').mkdir(parents=True)
    (root / 'instance-templates' / 'common' / 'postfix' /
     'master.cf.in').write_text('common')
    (root / 'software' / 'stack' / 'definitions.json').write_text('{}')
    (root / 'software' / 'stack' / 'mail.cfg').write_text('[buildout]\n')
    destination = tmp_path / 'profile'
    destination.mkdir()
    (destination / 'stale').write_text('old')
    files = files_under(str(root), [
        str(root / 'instance-templates' / 'common'),
        str(root / 'software' / 'stack' / 'definitions.json')])
    copy_tree(str(root), files, str(destination))
    assert sorted(p.relative_to(destination).as_posix()
                  for p in destination.rglob('*') if p.is_file()) == [
        'instance-templates/common/postfix/master.cf.in',
        'software/stack/definitions.json']


def test_the_location_changes_with_the_content(tmp_path):
    (tmp_path / 'templates').mkdir()
    template = tmp_path / 'templates' / 'instance.cfg.in'
    template.write_text('[buildout]\n')
    files = files_under(str(tmp_path), [str(tmp_path / 'templates')])
    before = digest(str(tmp_path), files)
    assert digest(str(tmp_path), files) == before
    template.write_text('[buildout]\nparts =\n')
    assert digest(str(tmp_path), files) != before
