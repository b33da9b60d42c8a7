from recipes.profile_files import copy_tree


def test_directories_of_the_same_name_are_merged_and_stale_files_go(tmp_path):
    common, release = tmp_path / 'common', tmp_path / 'release'
    (common / 'postfix').mkdir(parents=True)
    (release / 'postfix').mkdir(parents=True)
    (common / 'postfix' / 'master.cf.in').write_text('common')
    (release / 'postfix' / 'main.cf.in').write_text('release')
    (release / 'schema.json').write_text('{}')
    destination = tmp_path / 'profile'
    destination.mkdir()
    (destination / 'stale').write_text('old')
    copy_tree([str(common / 'postfix'), str(release / 'postfix'),
               str(release / 'schema.json')], str(destination))
    assert sorted(p.relative_to(destination).as_posix()
                  for p in destination.rglob('*')) == [
        'postfix', 'postfix/main.cf.in', 'postfix/master.cf.in', 'schema.json']


def test_the_location_changes_with_the_content(tmp_path):
    from recipes.profile_files import digest
    (tmp_path / 'templates').mkdir()
    template = tmp_path / 'templates' / 'instance.cfg.in'
    template.write_text('[buildout]\n')
    before = digest([str(tmp_path / 'templates')])
    assert digest([str(tmp_path / 'templates')]) == before
    template.write_text('[buildout]\nparts =\n')
    assert digest([str(tmp_path / 'templates')]) != before
