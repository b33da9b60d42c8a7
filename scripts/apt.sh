# apt_get ARGS...: apt-get that waits for the locks of another apt-get or
# dpkg (an unattended upgrade, a second set-up) instead of failing at
# once, up to APT_LOCK_TIMEOUT seconds (default 600), and says so on the
# file descriptor APT_SAY_FD (default 2, standard error). dpkg's lock is
# waited for by apt-get itself (-o DPkg::Lock::Timeout); the lock of the
# package lists, which `apt-get update` takes and does not wait for (apt
# 2.6), by trying again every 5 s. apt-get's output goes to standard
# output.
# Sourced by scripts/setup.sh and scripts/fetch-postfix-source.sh (sh).
APT_LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-600}
APT_SAY_FD=${APT_SAY_FD:-2}

apt_get() {
    _apt_deadline=$(( $(date +%s) + APT_LOCK_TIMEOUT ))
    _apt_said=
    while :; do
        _apt_rc=0
        _apt_out=$(apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" "$@" 2>&1) \
            || _apt_rc=$?
        printf '%s\n' "$_apt_out"
        case $_apt_out in
            *"Could not get lock"*) ;;
            *) return $_apt_rc ;;
        esac
        if [ "$(date +%s)" -ge "$_apt_deadline" ]; then
            echo "apt-get $*: apt's lock still held after ${APT_LOCK_TIMEOUT} s: giving up" >&"$APT_SAY_FD"
            return $_apt_rc
        fi
        if [ -z "$_apt_said" ]; then
            _apt_holder=$(printf '%s\n' "$_apt_out" | sed -n 's/.*\(held by process [0-9]* ([^)]*)\).*/\1/p' | head -n 1)
            echo "apt-get $*: waiting for apt's lock${_apt_holder:+ (}${_apt_holder}${_apt_holder:+)}, up to ${APT_LOCK_TIMEOUT} s" >&"$APT_SAY_FD"
            _apt_said=1
        fi
        sleep 5
    done
}
