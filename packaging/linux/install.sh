#!/bin/sh
# Register Mzarr with the Linux desktop for the current user (no root needed):
#   * the "Mzarr Viewer" application entry (menu, "Open with")
#   * the application/x-mzarr file type (*.mzarr, recognised by content too)
#   * Mzarr as the default application for that type
#   * the application and file-type icons
#   * links ~/.local/bin/mzarr and ~/.local/bin/mzarr-viewer (bundle only);
#     the desktop entry starts the viewer through that link, so it works
#     wherever the bundle sits (xdg-open without a desktop environment
#     cannot start a program whose path holds spaces)
#
# Unpack the bundle first, e.g.:
#   mkdir -p ~/.local/opt && tar -xzf mzarr-*-linux-x86_64.tar.gz -C ~/.local/opt
#
#   ./install.sh                 register (run it from the unpacked bundle)
#   ./install.sh --uninstall     remove all of the above again
#   ./install.sh --exec PATH     use PATH as the viewer executable
#                                (e.g. a pip-installed mzarr-viewer)
#   ./install.sh --no-bin-links  do not link the programs into ~/.local/bin
#
# Files go to $XDG_DATA_HOME (default ~/.local/share) and the default-app
# choice to $XDG_CONFIG_HOME/mimeapps.list (default ~/.config).
set -eu

APP_ID=mzarr-viewer          # desktop file id = the executable name, which Qt uses as app id
MIME=application/x-mzarr
MIME_ICON=application-x-mzarr
SIZES="16 24 32 48 64 128 256 512"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

mode=install
exec_path=""
no_bin=0
while [ $# -gt 0 ]; do
    case "$1" in
        --uninstall|-u) mode=uninstall ;;
        --exec) [ $# -ge 2 ] || { echo "--exec needs a path" >&2; exit 2; }; exec_path=$2; shift ;;
        --exec=*) exec_path=${1#--exec=} ;;
        --no-bin-links) no_bin=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/share/mzarr.xml" ]; then
    # unpacked bundle: install.sh, mzarr-viewer, mzarr, share/, _internal/
    share=$here/share
    icons=$here/_internal/resources
    default_exec=$here/mzarr-viewer
    cli=$here/mzarr
elif [ -f "$here/mzarr.xml" ] && [ -d "$here/../../resources" ]; then
    # source checkout: packaging/linux/install.sh
    share=$here
    icons=$(cd "$here/../../resources" && pwd)
    default_exec=$(command -v mzarr-viewer 2>/dev/null || true)
    cli=""
else
    echo "install.sh: cannot find mzarr.xml next to me or in share/" >&2
    exit 1
fi

data=${XDG_DATA_HOME:-$HOME/.local/share}
config=${XDG_CONFIG_HOME:-$HOME/.config}
bindir=$HOME/.local/bin
apps=$data/applications
hicolor=$data/icons/hicolor

have() { command -v "$1" >/dev/null 2>&1; }

refresh() {
    if have update-mime-database; then
        update-mime-database "$data/mime" >/dev/null 2>&1 || echo "warning: update-mime-database failed" >&2
    else
        echo "note: update-mime-database not found (package shared-mime-info); file type registered on next login" >&2
    fi
    if have update-desktop-database; then
        update-desktop-database -q "$apps" 2>/dev/null || true
    fi
    if [ -d "$hicolor" ]; then
        touch "$hicolor" 2>/dev/null || true
        if have gtk-update-icon-cache && [ -f "$hicolor/index.theme" ]; then
            gtk-update-icon-cache -q -t -f "$hicolor" 2>/dev/null || true
        fi
    fi
}

# Quote a path for a desktop file's Exec key (Desktop Entry spec, "The Exec key").
exec_quote() {
    case "$1" in
        *[!A-Za-z0-9_./+,:@=-]*)
            # reserved characters: double-quote it, backslash-escape " ` $ \ inside,
            # then escape backslashes once more for the string-value level
            q=$(printf '%s' "$1" | sed -e 's/[\\"`$]/\\&/g' -e 's/\\/\\\\/g')
            printf '"%s"' "$q" ;;
        *) printf '%s' "$1" ;;
    esac | sed 's/%/%%/g'
}

# Set "$MIME=$APP_ID.desktop" under [Default Applications] in mimeapps.list
# (used when xdg-mime is missing or fails, e.g. with no desktop session).
set_default_fallback() {
    f=$config/mimeapps.list
    mkdir -p "$config"
    [ -f "$f" ] || printf '[Default Applications]\n' > "$f"
    tmp=$f.mzarr.$$
    awk -v key="$MIME" -v val="$APP_ID.desktop" '
        BEGIN { done = 0 }
        /^\[/ { if (insec && !done) { print key "=" val; done = 1 } insec = ($0 == "[Default Applications]") }
        insec && index($0, key "=") == 1 { if (!done) { print key "=" val; done = 1 } next }
        { print }
        END { if (!done) { if (!insec) print "[Default Applications]"; print key "=" val } }
    ' "$f" > "$tmp" && mv "$tmp" "$f"
}

remove_default() {
    f=$config/mimeapps.list
    [ -f "$f" ] || return 0
    tmp=$f.mzarr.$$
    grep -v "^$MIME=$APP_ID.desktop;\{0,1\}\$" "$f" > "$tmp" || true
    mv "$tmp" "$f"
}

do_install() {
    exe=${exec_path:-$default_exec}
    if [ -z "$exe" ]; then
        echo "install.sh: no mzarr-viewer found; pass --exec /path/to/mzarr-viewer" >&2
        exit 1
    fi
    case "$exe" in /*) ;; *) exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe") ;; esac
    if [ ! -x "$exe" ]; then
        echo "install.sh: $exe is not an executable" >&2
        exit 1
    fi

    mkdir -p "$apps" "$data/mime/packages" "$hicolor/scalable/apps" "$hicolor/scalable/mimetypes"

    # The desktop entry runs the viewer through ~/.local/bin/mzarr-viewer when that link is made: a path
    # without the bundle's folder name, which may hold spaces that simple launchers (xdg-open's generic
    # mode under plain window managers) split on despite the quoting the Desktop Entry spec asks for.
    launch=$exe
    if [ -n "$cli" ] && [ "$no_bin" = 0 ]; then
        mkdir -p "$bindir"
        ln -sfn "$cli" "$bindir/mzarr"
        ln -sfn "$exe" "$bindir/mzarr-viewer"
        launch=$bindir/mzarr-viewer
        case ":$PATH:" in
            *":$bindir:"*) ;;
            *) echo "note: add $bindir to your PATH to run 'mzarr' and 'mzarr-viewer' from a terminal" ;;
        esac
    fi
    case "$launch" in
        *[!A-Za-z0-9_./+,:@=-]*)
            echo "note: $launch holds spaces or special characters; desktop environments start it, but some" \
                 "launchers (xdg-open without a desktop environment) may not: move it to a simpler path" >&2 ;;
    esac

    X_EXEC=$(exec_quote "$launch") X_TRY=$(printf '%s' "$launch" | sed 's/\\/\\\\/g') \
    awk '/^Exec=/    { print "Exec=" ENVIRON["X_EXEC"] " %f"; next }
         /^TryExec=/ { print "TryExec=" ENVIRON["X_TRY"]; next }
         { print }' "$share/$APP_ID.desktop" > "$apps/$APP_ID.desktop"
    chmod 644 "$apps/$APP_ID.desktop"

    cp "$share/mzarr.xml" "$data/mime/packages/mzarr.xml"

    for n in $SIZES; do
        mkdir -p "$hicolor/${n}x${n}/apps" "$hicolor/${n}x${n}/mimetypes"
        [ -f "$icons/icons/mzarr-$n.png" ] && cp "$icons/icons/mzarr-$n.png" "$hicolor/${n}x${n}/apps/mzarr.png"
        [ -f "$icons/icons/mzarr-file-$n.png" ] && cp "$icons/icons/mzarr-file-$n.png" "$hicolor/${n}x${n}/mimetypes/$MIME_ICON.png"
    done
    cp "$icons/mzarr.svg" "$hicolor/scalable/apps/mzarr.svg"
    cp "$icons/mzarr-file.svg" "$hicolor/scalable/mimetypes/$MIME_ICON.svg"

    refresh

    if ! { have xdg-mime && xdg-mime default "$APP_ID.desktop" "$MIME" 2>/dev/null \
           && [ "$(xdg-mime query default "$MIME" 2>/dev/null)" = "$APP_ID.desktop" ]; }; then
        set_default_fallback
    fi

    echo "Mzarr registered: $apps/$APP_ID.desktop -> $launch"
    echo "Double-click a .mzarr file to open it (log out and in if your file manager does not notice yet)."
}

do_uninstall() {
    rm -f "$apps/$APP_ID.desktop" "$data/mime/packages/mzarr.xml"
    for n in $SIZES; do
        rm -f "$hicolor/${n}x${n}/apps/mzarr.png" "$hicolor/${n}x${n}/mimetypes/$MIME_ICON.png"
    done
    rm -f "$hicolor/scalable/apps/mzarr.svg" "$hicolor/scalable/mimetypes/$MIME_ICON.svg"
    remove_default
    for name in mzarr mzarr-viewer; do
        link=$bindir/$name
        # only our links: symlinks into a folder that holds a bundle's _internal/
        if [ -L "$link" ] && [ -d "$(dirname "$(readlink "$link")")/_internal" ]; then
            rm -f "$link"
        fi
    done
    refresh
    echo "Mzarr unregistered from $data"
}

case "$mode" in
    install) do_install ;;
    uninstall) do_uninstall ;;
esac
