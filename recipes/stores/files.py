"""Files the recipes keep in a partition: written atomically, read back
with a default when absent or unreadable."""
import json
import os
import secrets
import tempfile


def write_atomically(path, text, mode=0o600):
    """Temporary file in the same directory, fsync, rename: a reader sees
    the old file or the new one, never a part."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory,
                               prefix='.' + os.path.basename(path))
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_json(path, default):
    """The JSON in ``path``, or ``default`` when it is absent or damaged
    (state that can be computed again)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return default


def secret(path, size=24):
    """The random secret kept in ``path`` (0600), made (``size`` random
    bytes, URL-safe base64) at the first call."""
    if not os.path.exists(path):
        write_atomically(path, secrets.token_urlsafe(size) + '\n')
    with open(path) as f:
        return f.read().strip()
