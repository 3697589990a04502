"""redrum-kit: drum tools for producers and sound designers.

Packages by job: `audio` (I/O), `synth` (built-in drum synthesiser),
`features` (DSP features), `library` (oneshots, kits), `models` (neural
networks, one file each), `cli` (the `redrum` command).
"""

__version__ = "0.1.0"
