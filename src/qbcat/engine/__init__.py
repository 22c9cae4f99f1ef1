"""The engine: one point's physics, from parameters to trajectories.

``params`` (names, defaults, identity) -> ``model`` (operators) -> ``solve`` (the engines' common
entry and the QuTiP engine) / ``batched`` (the compiled batched engine) -> ``cutoff`` (the photon
cutoff certificate and ``n_fock: auto``); ``observables`` holds the adjoint-Lindbladian rate
operators and the ergotropy. Nothing here imports the workflow, the datasets or the products.
See docs/architecture.md.
"""
