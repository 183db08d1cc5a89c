# Sourced, not run: makes .venv hold exactly the lock, then activates it.
#   source scripts/venv.sh [PYTHON]    (PYTHON defaults to python3 on PATH)
# Callers that are scripts name it, or source would hand the script's own arguments on.
# The Nix shellHook passes its own Python; scripts/run without Nix uses the host's.
# uv installs uv.lock (uv sync removes what the lock does not list); pip, and a machine
# without uv, install requirements.txt, the same lock exported with hashes, into a fresh .venv.
#
# A warm entry starts no python, pip or uv: .venv/.installed records what the last
# successful install used (interpreter, installer, lock file) and is checked in plain bash.

_venv_sync() {
  local root venv python stamp installer lock want file reason error deps
  # Inside the Nix shell `deps` is a command; without Nix it is the script.
  if [ -n "${IN_NIX_SHELL:-}" ]; then deps=deps; else deps=./scripts/deps; fi
  case ${BASH_SOURCE[0]} in
    */*) root=${BASH_SOURCE[0]%/*}/.. ;;
    *) root=.. ;;
  esac
  root=$(cd "$root" && pwd) || return
  venv="$root/.venv"
  stamp="$venv/.installed"
  python=$(command -v "${1:-python3}")
  # Inside the activated .venv, python3 is the venv's own: keep the interpreter it was built with.
  if [[ $python == "$venv"/* && -f $venv/.interpreter ]]; then
    python=$(<"$venv/.interpreter")
    python=${python% *}
  fi

  if [ -z "$python" ] || [ ! -x "$python" ]; then
    echo "venv.sh: no ${1:-python3} found; enter the Nix shell (nix develop) or install Python 3" >&2
    return 1
  fi
  installer=uv
  # The Nix shell always has uv; a bare machine may not, and pip installs the same lock, only slower.
  if ! command -v uv >/dev/null; then
    echo "venv.sh: uv is not on PATH; using pip (pip install uv, or nix develop, for faster installs)" >&2
    installer=pip
  fi
  if [ "$installer" = uv ]; then lock=uv.lock; else lock=requirements.txt; fi
  for file in pyproject.toml "$lock"; do
    if [ ! -f "$root/$file" ]; then
      echo "venv.sh: $file is missing; restore it with git checkout $file" >&2
      return 1
    fi
  done

  want="interpreter: $python
installer: $installer
lock: $lock"
  # The lock is compared by age, not read: git, deps and editors all leave a changed file newer
  # than the stamp. uv also checks that the lock still matches pyproject.toml; pip cannot.
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(<"$stamp")" = "$want" ] &&
    [ ! "$root/$lock" -nt "$stamp" ] && { [ "$installer" = pip ] || [ ! "$root/pyproject.toml" -nt "$stamp" ]; }; then
    source "$venv/bin/activate"
    return
  fi

  for file in pyproject.toml "$lock"; do
    case $'\n'$(<"$root/$file") in
      *$'\n<<<<<<< '*|*$'\n>>>>>>> '*)
        if [ "$file" = pyproject.toml ]; then
          echo "venv.sh: pyproject.toml has merge conflict markers; resolve them, then relock with $deps lock" >&2
        else
          echo "venv.sh: $file has merge conflict markers; relock it from pyproject.toml with $deps lock" >&2
        fi
        return 1 ;;
    esac
  done

  rm -f "$stamp"
  # pip cannot remove what the lock dropped, so it always starts from an empty .venv.
  # uv installs without a pip of its own; pip needs one, so the installer is part of the identity.
  if [ "$installer" = pip ] || [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.interpreter" ] ||
    [ "$(<"$venv/.interpreter")" != "$python $installer" ]; then
    echo "venv.sh: creating .venv with $python" >&2
    rm -rf "$venv"
    if ! "$python" -m venv $([ "$installer" = uv ] && echo --without-pip) "$venv"; then
      rm -rf "$venv"
      echo "venv.sh: could not create .venv with $python; check that its venv module works" >&2
      return 1
    fi
    printf '%s' "$python $installer" >"$venv/.interpreter"
  fi

  echo "venv.sh: installing $lock into .venv" >&2
  if [ "$installer" = uv ]; then
    UV_PROJECT_ENVIRONMENT=$venv uv sync --locked --quiet --project "$root" --python "$venv/bin/python"
  else
    # --no-deps: the export already lists every package, pinned and hashed. Without it pip re-resolves each
    # package's own requirements, and the pip that Python 3.11 bundles (23.2) then refuses an extra such as
    # uvicorn[standard]>=0.30 as "not pinned" once a newer uvicorn is published.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$root/$lock"
  fi
  if [ $? -ne 0 ]; then
    if [ "$root/pyproject.toml" -nt "$root/$lock" ]; then
      echo "venv.sh: installing $lock failed (see above); pyproject.toml is newer than it: relock with $deps lock" >&2
    else
      echo "venv.sh: installing $lock failed (see above); check the network, then run this again" >&2
    fi
    return 1
  fi
  case $'\n'$(<"$root/$lock") in
    *$'\nname = "numpy"\n'*|*$'\nnumpy=='*)
      if ! error=$("$venv/bin/python" -c 'import numpy' 2>&1); then
        case "$error" in
          *"No module named 'numpy'"*)
            reason="$lock lists numpy for another platform only; check its markers" ;;
          *libstdc++*|*libz.so*|*"cannot open shared object"*)
            reason="enter the shell with nix develop, which puts libstdc++ and zlib on LD_LIBRARY_PATH" ;;
          *)
            reason="run rm -rf .venv and enter the shell again" ;;
        esac
        echo "venv.sh: numpy does not import in .venv (${error##*$'\n'}); $reason" >&2
        return 1
      fi ;;
  esac
  # The repo root on the venv's sys.path: a notebook in any folder imports the app's modules (tools.<x>).
  for file in "$venv"/lib/python3*/site-packages; do
    printf '%s\n' "$root" >"$file/repo-root.pth"
  done
  printf '%s' "$want" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
  source "$venv/bin/activate"
}

if _venv_sync "$@"; then
  unset -f _venv_sync
else
  unset -f _venv_sync
  return 1
fi
