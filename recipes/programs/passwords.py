"""The command that sets or changes an account's password in the account
database (``recipes.stores.accounts``): the webmail's password change runs
it, so that a password set there is hashed and kept as the password page's.

  python -m recipes.programs.passwords set-password DIRECTORY ADDRESS
  python -m recipes.programs.passwords change-password DIRECTORY ADDRESS

The secrets come on standard input, one a line, never in the arguments
(which any user of the machine sees in ``ps``)."""
import sys

from ..stores import accounts

EXIT_CODES = {accounts.UnknownUser: 3, accounts.InvalidToken: 4,
              accounts.WeakPassword: 5}
USAGE = """\
usage: python -m recipes.programs.passwords set-password DIRECTORY ADDRESS
       python -m recipes.programs.passwords change-password DIRECTORY ADDRESS
The secrets come on standard input, one a line, never in the arguments:
set-password: the token, then the new password; change-password: the current
password, then the new one. Exit 0 on success, 3 unknown user, 4 wrong token
or current password, 5 password refused (the reason on standard error).
"""


def main(argv=None, stdin=None):
    argv = sys.argv[1:] if argv is None else argv
    stdin = sys.stdin if stdin is None else stdin
    if len(argv) != 3 or argv[0] not in ('set-password', 'change-password'):
        sys.stderr.write(USAGE)
        return 2
    command, directory, address = argv
    first = stdin.readline().rstrip('\r\n')
    second = stdin.readline().rstrip('\r\n')
    function = (accounts.set_password if command == 'set-password'
                else accounts.change_password)
    try:
        function(directory, address, first, second)
    except accounts.AccountError as e:
        sys.stderr.write('%s: %s\n' % (address, e))
        return EXIT_CODES[type(e)]
    return 0


if __name__ == '__main__':
    sys.exit(main())
