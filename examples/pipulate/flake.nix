{
  description = "Pipulate: Python dev shell with a .venv from requirements.txt";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      title = "Pipulate";
      pythonVersion = "3.12";

      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      devShells = forEachSystem (pkgs:
        let
          inherit (pkgs) lib stdenv;
          python = pkgs."python${builtins.replaceStrings [ "." ] [ "" ] pythonVersion}";
        in
        {
          default = pkgs.mkShell {
            packages = [
              python
              pkgs.uv
            ];

            APP_TITLE = title;

            # Wheels from PyPI (numpy, pandas) expect libstdc++ and zlib where a
            # Linux distro keeps them; NixOS does not, so point at exactly those two.
            LD_LIBRARY_PATH = lib.optionalString stdenv.isLinux
              (lib.makeLibraryPath [ stdenv.cc.cc.lib pkgs.zlib ]);

            shellHook = ''
              # nix develop also works from a subdirectory: find the repo root.
              repo=$PWD
              while [ -n "$repo" ] && [ ! -e "$repo/flake.nix" ]; do repo=''${repo%/*}; done
              repo=''${repo:-$PWD}
              export PATH="$repo/scripts:$PATH"
              # Some nix flake init versions drop executable bits; put them back once.
              for script in "$repo"/scripts/*; do
                [ "$script" = "$repo/scripts/venv.sh" ] || [ -x "$script" ] || chmod +x "$script"
              done

              # The GPU is a property of the machine, not of the flake: look at run time.
              if command -v nvidia-smi >/dev/null 2>&1 || [ -e /usr/lib/wsl/lib/libcuda.so ]; then
                [ -d /usr/lib/wsl/lib ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/usr/lib/wsl/lib"
                [ -d /run/opengl-driver/lib ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/run/opengl-driver/lib"
                gpu="CUDA: NVIDIA driver found, GPU wheels from requirements.txt can use it"
              else
                gpu="CUDA: no NVIDIA GPU found, running on CPU"
              fi

              source "$repo/scripts/venv.sh" ${python.interpreter}
              {
                echo ${lib.escapeShellArg "== ${title} =="}
                echo "$gpu"
                echo "run: serve the app on http://127.0.0.1:5001"
                echo "pytest: the repo's tests"
              } >&2
              unset repo gpu
            '';
          };
        });
    };
}
