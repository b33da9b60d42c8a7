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
