"""Motion models that fill the generator's slot: procedural baseline, learned Avatar Forcing
(``forcing/``), the factory that picks one from a parameter, and their evaluation."""
