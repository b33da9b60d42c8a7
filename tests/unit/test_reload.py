"""recipes.instance.reload: reload on a content change only, and its state."""
import logging
import shlex
import sys

from recipes.instance.reload import Recipe, reload_if_changed

# the "daemon": appends a line to a log per reload, fails when told to
DAEMON = ('import sys; open(sys.argv[1], "a").write("reloaded\\n"); '
          'sys.stderr.write(sys.argv[2]); sys.exit(int(sys.argv[3]))')


def command(log, status=0, message=''):
    return [sys.executable, '-c', DAEMON, str(log), message, str(status)]


def reloads(log):
    return log.read_text().count('reloaded') if log.exists() else 0


def recipe(tmp_path, files, status=0, message=''):
    options = {'files': ' '.join(str(f) for f in files),
               'command': shlex.join(command(tmp_path / 'log', status,
                                             message)),
               'state-file': str(tmp_path / '.reload-state')}
    return Recipe(None, 'postfix-reload', options)


def test_runs_on_the_first_run_then_only_when_the_content_changes(tmp_path):
    main, master = tmp_path / 'main.cf', tmp_path / 'master.cf'
    main.write_text('a = 1\n')
    master.write_text('smtp inet\n')
    log = tmp_path / 'log'
    assert recipe(tmp_path, [main, master]).install() == []
    assert reloads(log) == 1
    # buildout runs the part again (update): nothing changed, no reload
    recipe(tmp_path, [main, master]).update()
    assert reloads(log) == 1
    # rewriting the same content (a new mtime) is no change either
    main.write_text('a = 1\n')
    recipe(tmp_path, [main, master]).update()
    assert reloads(log) == 1
    master.write_text('smtp inet\nsubmission inet\n')
    recipe(tmp_path, [main, master]).update()
    assert reloads(log) == 2
    # back to an earlier content is a change too
    master.write_text('smtp inet\n')
    recipe(tmp_path, [main, master]).update()
    assert reloads(log) == 3


def test_content_moving_from_one_file_to_another_is_a_change(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.write_text('xy')
    b.write_text('z')
    log, state = tmp_path / 'log', str(tmp_path / 'state')
    assert reload_if_changed([str(a), str(b)], command(log), state)
    a.write_text('x')
    b.write_text('yz')
    assert reload_if_changed([str(a), str(b)], command(log), state)
    assert not reload_if_changed([str(a), str(b)], command(log), state)
    assert reloads(log) == 2


def test_a_lost_state_file_means_one_more_reload(tmp_path):
    conf = tmp_path / 'dovecot.conf'
    conf.write_text('protocols = imap\n')
    log, state = tmp_path / 'log', tmp_path / 'state'
    assert reload_if_changed([str(conf)], command(log), str(state))
    assert state.read_text()          # what the next run compares with
    state.unlink()
    assert reload_if_changed([str(conf)], command(log), str(state))
    assert reloads(log) == 2


def test_a_daemon_not_running_is_no_error_and_is_not_asked_again(
        tmp_path, caplog):
    conf = tmp_path / 'main.cf'
    conf.write_text('a = 1\n')
    caplog.set_level(logging.INFO, 'recipes.instance.reload')
    # postfix reload when postfix is not running: exit status 1
    r = recipe(tmp_path, [conf], status=1,
               message='postfix: fatal: the Postfix mail system is not '
                       'running')
    assert r.install() == []
    assert 'not running' in caplog.text
    # it reads the configuration when it starts: no retry of the same one
    recipe(tmp_path, [conf], status=1).update()
    assert reloads(tmp_path / 'log') == 1


def test_unless_keeps_the_command_from_running(tmp_path):
    # a flush while defer_transports holds the mail would send it around
    # the relay: the backend's flush waits while its mode defers
    main = tmp_path / 'main.cf'
    main.write_text('defer_transports = smtp\n')
    log = tmp_path / 'log'
    held = recipe(tmp_path, [main])
    held.options['unless'] = 'smtp'
    assert held.install() == []
    assert reloads(log) == 0
    # the relay answered: the files changed, the command runs
    main.write_text('defer_transports =\n')
    released = recipe(tmp_path, [main])
    released.options['unless'] = ''
    released.install()
    assert reloads(log) == 1
