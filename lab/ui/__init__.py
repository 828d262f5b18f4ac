"""The app's tabs. Each module has ``build()``, which lays out one tab and wires it to the engine."""
