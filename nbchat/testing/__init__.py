"""Testing support: the pytest plugin (``plugin.py``, the ``pytest11`` entry point
``nbchat``), its nbval hooks (``nbval.py``) and the pure model of how JupyterLab
saves display updates (``displays.py``).

Importing this package loads nothing: ``displays.py`` is pure and the notebook
layer reads its marker, while the plugin needs pytest.
"""

__all__: list[str] = []
