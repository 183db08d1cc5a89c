{
  description = "Darwinix: Python dev shell with a .venv installed from uv.lock";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      title = "Darwinix";
      pythonVersion = "3.12";

      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      pythonOf = pkgs: pkgs."python${builtins.replaceStrings [ "." ] [ "" ] pythonVersion}";

      # Wheels from PyPI (numpy, pandas) expect libstdc++ and zlib where a
      # Linux distro keeps them; NixOS does not, so point at exactly those two.
      libraryPath = pkgs: pkgs.lib.optionalString pkgs.stdenv.isLinux
        (pkgs.lib.makeLibraryPath [ pkgs.stdenv.cc.cc.lib pkgs.zlib ]);
    in
    {
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
                echo "deps: add, remove or upgrade Python packages (relocks uv.lock)"
                echo "pytest: the repo's tests"
              } >&2
              unset repo gpu script wrapper
            '';
          };
        });
    };
}
