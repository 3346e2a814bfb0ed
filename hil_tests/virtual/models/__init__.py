"""Device models for the virtual board, each written from its chip's datasheet, never from
our drivers. A model names the bus keys it answers for and reacts to bus operations at the
virtual time it is given; a `scenario` callable gives the world's state at that time."""


class Model:
    board = None
    fault = None  # a model-specific fault name, or None for a healthy chip

    def bus_keys(self):
        raise NotImplementedError

    def answers(self, vt):
        return self.fault != "nack"
