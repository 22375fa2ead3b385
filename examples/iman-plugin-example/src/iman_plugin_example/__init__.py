"""An example method plug-in for IMAN (``docs/methods/adding-a-method.md``).

Kept empty on purpose: the workflow imports the card module (and so this package) whenever
it reads the methods, so nothing heavy may be imported here.
"""
