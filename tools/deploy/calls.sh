# Shared by tools/deploy/deploy and destroy: the calls that change something.
# shellcheck shell=bash

# The original stdout, where --dry-run prints the calls whatever a call's output is sent to.
exec 3>&1

# change COMMAND…: runs it, or with DRY_RUN=1 prints it as "+ command" and changes nothing.
change() {
    if [ "$DRY_RUN" = 1 ]; then
        {
            printf '+'
            printf ' %q' "$@"
            printf '\n'
        } >&3
    else
        "$@"
    fi
}
