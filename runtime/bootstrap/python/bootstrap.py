"""lambdad's Python runtime client: the entry point lambdad starts.

Deliberately tiny: CPython never caches the bytecode of the script it runs,
so the client itself lives in lambdad_bootstrap.py, whose compiled form is
cached in __pycache__ (see that file for the design and ../README.md for the
contract)."""
import sys

if not sys.path or sys.path[0] != __file__.rpartition("/")[0]:
    sys.path.insert(0, __file__.rpartition("/")[0] or ".")
import lambdad_bootstrap

lambdad_bootstrap.main()
