# Sourced, not run: keeps .venv in step with the interpreter and requirements.txt,
# then activates it.
#   source scripts/venv.sh [PYTHON]    (PYTHON defaults to python3 on PATH)
# The Nix shellHook passes its own Python; scripts/run without Nix uses the host's.
#
# A warm entry starts no python, pip or uv: .venv/.installed records what the last
# successful install saw (interpreter, installer, requirements.txt, numpy importing if required)
# and is compared in plain bash.

_venv_sync() {
  local root venv python stamp want reason error
  case ${BASH_SOURCE[0]} in
    */*) root=${BASH_SOURCE[0]%/*}/.. ;;
    *) root=.. ;;
  esac
  root=$(cd "$root" && pwd) || return
  venv="$root/.venv"
  stamp="$venv/.installed"
  python=${1:-$(command -v python3)}

  if [ -z "$python" ] || [ ! -x "$python" ]; then
    echo "venv.sh: no python3 found; enter the Nix shell (nix develop) or install Python 3" >&2
    return 1
  fi
  if [ ! -f "$root/requirements.txt" ]; then
    echo "venv.sh: requirements.txt is missing; restore it with git checkout requirements.txt" >&2
    return 1
  fi
  installer=uv
  # The Nix shell always has uv; a bare machine may not, and pip builds the same .venv, only slower.
  if ! command -v uv >/dev/null; then
    echo "venv.sh: uv is not on PATH; using pip (pip install uv, or nix develop, for faster installs)" >&2
    installer=pip
  fi

  # uv installs into a venv without pip of its own; pip needs one, so the installer is part of the identity.
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.interpreter" ] || [ "$(<"$venv/.interpreter")" != "$python $installer" ]; then
    echo "venv.sh: creating .venv with $python" >&2
    rm -rf "$venv"
    if ! "$python" -m venv $([ "$installer" = uv ] && echo --without-pip) "$venv"; then
      rm -rf "$venv"
      echo "venv.sh: could not create .venv with $python; check that its venv module works" >&2
      return 1
    fi
    printf '%s' "$python $installer" >"$venv/.interpreter"
  fi

  want="interpreter: $python
installer: $installer
numpy: checked
requirements.txt:
$(<"$root/requirements.txt")"
  if [ -f "$stamp" ] && [ "$(<"$stamp")" = "$want" ]; then
    source "$venv/bin/activate"
    return
  fi

  rm -f "$stamp"
  echo "venv.sh: installing requirements.txt into .venv" >&2
  if [ "$installer" = uv ]; then
    uv pip install --quiet --python "$venv/bin/python" -r "$root/requirements.txt"
  else
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt"
  fi
  if [ $? -ne 0 ]; then
    echo "venv.sh: installing requirements.txt failed (see above); fix it and enter the shell again" >&2
    return 1
  fi
  if grep -Eiq '^[[:space:]]*numpy([^A-Za-z0-9_.-]|$)' "$root/requirements.txt" &&
    ! error=$("$venv/bin/python" -c 'import numpy' 2>&1); then
    case "$error" in
      *"No module named 'numpy'"*)
        reason="requirements.txt names numpy but it did not install; check that line" ;;
      *libstdc++*|*libz.so*|*"cannot open shared object"*)
        reason="enter the shell with nix develop, which puts libstdc++ and zlib on LD_LIBRARY_PATH" ;;
      *)
        reason="run rm -rf .venv and enter the shell again" ;;
    esac
    echo "venv.sh: numpy does not import in .venv (${error##*$'\n'}); $reason" >&2
    return 1
  fi
  printf '%s' "$want" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
  source "$venv/bin/activate"
}

if _venv_sync "$@"; then
  unset -f _venv_sync
else
  unset -f _venv_sync
  return 1
fi
