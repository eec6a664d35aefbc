"""Pure domain: money, FX, cashback rules, draws, states and the exception tree.

Imports only the standard library.
"""
