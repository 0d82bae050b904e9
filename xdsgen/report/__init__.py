"""Presentation: what each command shows a person (plain or rich text) or a script (JSON).

The commands' work lives elsewhere (xdsgen.live, xdsgen.status, ...); these modules only
turn its results into lines, tables and objects.
"""
