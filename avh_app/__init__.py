"""The avh app's own machinery: one training run of the CNN (avh_app.run), its settings, loop, run
folders, tf.distribute plumbing, curves, TensorBoard overview, and the report and benchmark.

Built on the avh library (the callback and the dashboard); the library never imports this.
"""
