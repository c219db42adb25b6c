"""The bundled experiment configs (``elasticnas.configs``): YAML files shipped as package data.

``elasticnas train NAME`` and the quickstart find them by name through ``importlib.resources``,
so a wheel install has them as an editable checkout does.
"""
