{
  description = "Offline stand-in for nixpkgs: real nixpkgs attribute names backed by host binaries (tests only)";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];

      # Where builders look for host programs and libraries (globs allowed).
      binDirs = "/root/.pyenv/versions/*/bin /usr/local/bin /usr/bin /bin";
      libDirs = "/usr/lib/*-linux-gnu /lib/*-linux-gnu /usr/lib64 /lib64 /usr/lib /lib";

      # The one list of host programs this stand-in offers: attribute = programs it links.
      hostTools = {
        bashInteractive = [ "bash" ];
        cmake = [ "cmake" ];
        curl = [ "curl" ];
        figlet = [ "figlet" ];
        git = [ "git" ];
        htop = [ "htop" ];
        nix = [ "nix" ];
        tmux = [ "tmux" ];
        uv = [ "uv" "uvx" ];
        wget = [ "wget" ];
      };
      hostLibs = {
        zlib = [ "libz.so.1" ];
        libstdcxx = [ "libstdc++.so.6" ];
      };
      pythons = {
        python311 = "3.11";
        python312 = "3.12";
        python313 = "3.13";
      };
      pythonModules = [ "pip" "virtualenv" ];

      # lib: the few list and string helpers, plus the module system (modules.nix) a NixOS module is evaluated with.
      lib = rec {
        genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
        optional = cond: x: if cond then [ x ] else [ ];
        optionals = cond: xs: if cond then xs else [ ];
        optionalString = cond: s: if cond then s else "";
        optionalAttrs = cond: as: if cond then as else { };
        makeSearchPath = sub: pkgs: builtins.concatStringsSep ":" (map (p: "${p}/${sub}") pkgs);
        makeBinPath = makeSearchPath "bin";
        makeLibraryPath = makeSearchPath "lib";
        escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
      } // import ./modules.nix lib;

      # A derivation that runs `script` with host coreutils; Nix 2.8 `nix develop` needs a builder named bash.
      # The script travels in the environment, not in argv, so no process list shows it.
      hostDerivation = system: name: script: extra: derivation ({
        inherit name system;
        builder = "/bin/bash";
        args = [ "-euo" "pipefail" "-c" "eval \"$buildScript\"" ];
        buildScript = script;
        PATH = "/usr/bin:/bin";
        outputs = [ "out" ];
      } // extra);

      findIn = dirs: ''
        find_host() {
          local d
          for d in ${dirs}; do
            if [ -e "$d/$1" ]; then echo "$d/$1"; return 0; fi
          done
          echo "nixpkgs stand-in: host has no $1 (looked in ${dirs}); install it with apt-get" >&2
          return 1
        }
      '';

      linkHost = system: name: dirs: sub: files: hostDerivation system name (findIn dirs + ''
        mkdir -p "$out/${sub}"
        for f in ${toString files}; do ln -s "$(find_host "$f")" "$out/${sub}/$f"; done
      '') { };

      # Builders never start Python: the version is in the program's name (pythonX.Y)
      # and a module is found as a directory in that Python's site-packages.
      python = system: attr: version:
        let
          drv = hostDerivation system "python3-${version}-host" (findIn binDirs + ''
            host=$(find_host python${version} 2>/dev/null) || {
              echo "nixpkgs stand-in: ${attr} needs a host Python ${version} (looked in ${binDirs}); render with a python_version the host has" >&2
              exit 1
            }
            mkdir -p "$out/bin"
            for exe in python${version} python3 python; do ln -s "$host" "$out/bin/$exe"; done
          '') { };
        in
        drv // {
          pythonVersion = version;
          executable = "python${version}";
          interpreter = "${drv}/bin/python${version}";
        };

      pythonModule = system: py: module: hostDerivation system "python${py.pythonVersion}-${module}-host" ''
        prefix=$(dirname "$(dirname "$(readlink -f ${py.interpreter})")")
        if [ ! -d "$prefix/lib/python${py.pythonVersion}/site-packages/${module}" ]; then
          echo "nixpkgs stand-in: host Python ${py.pythonVersion} ($prefix) has no ${module} module; pip install ${module}" >&2
          exit 1
        fi
        mkdir -p "$out/bin"
        printf '#!/bin/bash\nexec %s -m ${module} "$@"\n' ${py.interpreter} > "$out/bin/${module}"
        chmod +x "$out/bin/${module}"
      '' { };

      packagesFor = system:
        let
          isLinux = builtins.match ".*-linux" system != null;
          isDarwin = builtins.match ".*-darwin" system != null;
          hostLib = name: linkHost system name libDirs "lib" hostLibs.${name};
          pkgs = builtins.mapAttrs (name: bins: linkHost system name binDirs "bin" bins) hostTools
            // builtins.mapAttrs (attr: version: python system attr version) pythons
            // builtins.listToAttrs (map
              (attr: {
                name = "${attr}Packages";
                value = lib.genAttrs pythonModules (pythonModule system pkgs.${attr});
              })
              (builtins.attrNames pythons))
            // {
              inherit lib;
              python3 = pkgs.python311;
              python3Packages = pkgs.python311Packages;
              zlib = hostLib "zlib";
              stdenv = {
                inherit isLinux isDarwin;
                hostPlatform = { inherit system isLinux isDarwin; };
                cc.cc.lib = hostLib "libstdcxx";
              };
              writeShellScript = name: text: hostDerivation system name ''
                printf '#!/bin/bash\n%s' "$text" > "$out"
                chmod +x "$out"
              '' { inherit text; };
              writeShellScriptBin = name: text: hostDerivation system name ''
                mkdir -p "$out/bin"
                printf '#!/bin/bash\n%s' "$text" > "$out/bin/${name}"
                chmod +x "$out/bin/${name}"
              '' { inherit text; };
              mkShell = { name ? "nix-shell", packages ? [ ], buildInputs ? [ ], nativeBuildInputs ? [ ], shellHook ? "", ... }@attrs:
                derivation (removeAttrs attrs [ "packages" "buildInputs" "nativeBuildInputs" ] // {
                  inherit name system shellHook;
                  builder = "/bin/bash";
                  args = [ "-c" "echo 'stand-in shell: enter it with nix develop' > $out" ];
                  PATH = lib.makeBinPath (packages ++ buildInputs ++ nativeBuildInputs);
                  outputs = [ "out" ];
                });
            };
        in
        pkgs;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs systems packagesFor;
    };
}
