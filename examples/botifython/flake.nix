{
  description = "Botifython: the app (nix run) and its Python dev shell, a .venv installed from uv.lock";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      title = "Botifython";
      pythonVersion = "3.12";

      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      pythonOf = pkgs: pkgs."python${builtins.replaceStrings [ "." ] [ "" ] pythonVersion}";
      slug = "botifython";
      lock = ./uv.lock;

      # nix run: the app's code from the store, and a .venv holding exactly the lock, built on the first start (and
      # again when the lock changes) in ~/.cache/<slug>, as nix develop builds .venv. The store is read-only, so
      # every file the app writes goes to DATA_DIR, by default ~/.local/share/<slug>.
      serve = pkgs:
        let
          inherit (pkgs) lib;
          python = pythonOf pkgs;
          app = builtins.path {
            path = self;
            name = "${slug}-app";
            filter = path: type: !(builtins.elem (baseNameOf path) [ ".venv" "data" ".git" ]);
          };
          installed = "${python.interpreter} ${builtins.hashFile "sha256" lock}";
        in
        pkgs.writeShellScriptBin slug ''
          set -euo pipefail
          export DATA_DIR=''${DATA_DIR:-''${XDG_DATA_HOME:-$HOME/.local/share}/${slug}}
          venv=''${XDG_CACHE_HOME:-$HOME/.cache}/${slug}/venv
          if [ "$(cat "$venv/.installed" 2>/dev/null)" != ${lib.escapeShellArg installed} ]; then
            echo "${slug}: installing the locked Python packages into $venv" >&2
            rm -rf "$venv"
            ${python.interpreter} -m venv --without-pip "$venv"
            UV_PROJECT_ENVIRONMENT=$venv ${pkgs.uv}/bin/uv sync --locked --quiet --project ${app} --python "$venv/bin/python"
            printf '%s' ${lib.escapeShellArg installed} >"$venv/.installed"
          fi
          # No __pycache__ beside the code, and no reloader watching code that cannot change.
          export PYTHONDONTWRITEBYTECODE=1 BOTIFYTHON_ENV=''${BOTIFYTHON_ENV:-prod}
          libraries=${lib.escapeShellArg (libraryPath pkgs)}
          [ -z "$libraries" ] || export LD_LIBRARY_PATH=$libraries''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
          exec "$venv/bin/python" ${app}/server.py "$@"
        '';

      # Wheels from PyPI (numpy, pandas) expect libstdc++ and zlib where a
      # Linux distro keeps them; NixOS does not, so point at exactly those two.
      libraryPath = pkgs: pkgs.lib.optionalString pkgs.stdenv.isLinux
        (pkgs.lib.makeLibraryPath [ pkgs.stdenv.cc.cc.lib pkgs.zlib ]);
    in
    {
      packages = forEachSystem (pkgs: { default = serve pkgs; });
      apps = forEachSystem (pkgs: { default = { type = "app"; program = "${serve pkgs}/bin/${slug}"; }; });
      # A team server on NixOS runs the same launcher as a service: services.<slug>, in nix/module.nix.
      nixosModules.default = import ./nix/module.nix { inherit slug title serve; defaultPort = 5001; };
      devShells = forEachSystem (pkgs:
        let
          python = pythonOf pkgs;
        in
        {
          default = pkgs.mkShell {
            packages = [
              python
              # Relocks (scripts/deps) and installs the lock into .venv (scripts/venv.sh).
              pkgs.uv
              pkgs.tmux
            ];

            APP_TITLE = title;
            LD_LIBRARY_PATH = libraryPath pkgs;

            shellHook = ''
              # nix develop also works from a subdirectory: find the repo root.
              repo=$PWD
              while [ -n "$repo" ] && [ ! -e "$repo/flake.nix" ]; do repo=''${repo%/*}; done
              repo=''${repo:-$PWD}

              # The GPU is a property of the machine, not of the flake: look at run time.
              if command -v nvidia-smi >/dev/null 2>&1 || [ -e /usr/lib/wsl/lib/libcuda.so ]; then
                [ -d /usr/lib/wsl/lib ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/usr/lib/wsl/lib"
                [ -d /run/opengl-driver/lib ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/run/opengl-driver/lib"
                gpu="CUDA: NVIDIA driver found, GPU wheels from requirements.txt can use it"
              else
                gpu="CUDA: no NVIDIA GPU found, running on CPU"
              fi

              source "$repo/scripts/venv.sh" ${python.interpreter}
              # Commands are wrappers in .venv (ignored by git) that run scripts/ with bash:
              # nix flake init may write the scripts without executable bits, and
              # restoring them would leave git dirty.
              mkdir -p "$repo/.venv/commands"
              for wrapper in "$repo"/.venv/commands/*; do
                [ -e "$repo/scripts/''${wrapper##*/}" ] || rm -f "$wrapper"
              done
              for script in "$repo"/scripts/*; do
                wrapper="$repo/.venv/commands/''${script##*/}"
                [ "$script" = "$repo/scripts/venv.sh" ] || [ -x "$wrapper" ] || {
                  printf '#!/usr/bin/env bash\nexec bash "$(dirname "$0")/../../scripts/%s" "$@"\n' "''${script##*/}" >"$wrapper"
                  chmod +x "$wrapper"
                }
              done
              export PATH="$repo/.venv/commands:$PATH"
              {
                echo ${pkgs.lib.escapeShellArg "== ${title} =="}
                echo "$gpu"
                echo "start / stop: JupyterLab in tmux on 127.0.0.1"
                echo "run: serve the app on http://127.0.0.1:5001"
                echo "deps: add, remove or upgrade Python packages (relocks uv.lock)"
                echo "pytest: the repo's tests"
              } >&2
              unset repo gpu script wrapper
            '';
          };
        });
    };
}
