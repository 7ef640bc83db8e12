"""Execution service: validates signals against the strategy's risk rules, places orders with a
broker and records trades. Built by the online-trading milestone; consumes ``completed.predict``.
"""
