"""mer_keras: micro-expression recognition with a VGGFace2 ResNet-50 and LSTMs in Keras 3.

Reproduces Bai & Goecke, "Investigating LSTM for Micro-Expression Recognition" (ICMI 2020).
The data flow, one module per step: datasets -> protocols -> pipeline -> backbone -> models
-> training -> metrics -> reports.
"""

__version__ = "0.1.0"
