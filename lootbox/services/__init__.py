"""Use cases: primitives in, plain results out. They talk to ports, never to Flask."""
