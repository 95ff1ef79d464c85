"""mer_keras: micro-expression recognition with a VGGFace2 ResNet-50 and LSTMs in Keras 3.

Reproduces Bai & Goecke, "Investigating LSTM for Micro-Expression Recognition" (ICMI 2020).
Importing the package registers its Keras layers, so ``keras.saving.load_model`` reads the
``final/model.keras`` of any run.
"""

__version__ = "0.1.0"

from mer_keras import backbone, models  # noqa: E402, F401  (registers the custom Keras layers)
