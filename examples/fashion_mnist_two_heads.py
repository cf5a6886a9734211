"""Fashion-MNIST with the functional API: one image, two heads, a skip connection.

The image (784 pixels) goes through a Dense trunk with a residual block,
h2 = h1 + Dense(relu)(h1) (an Add merge); two heads read h2:

- ``garment``: which of the 10 classes (softmax, categorical cross-entropy);
- ``upper``: whether the garment is worn on the upper body -- T-shirt/top, pullover, coat or
  shirt -- or not (sigmoid, binary cross-entropy), weighted 0.5 in the total loss.

Run: ``python examples/fashion_mnist_two_heads.py`` (``EPOCHS=1 TRAIN_EXAMPLES=10000`` for a quick
look). Five epochs on the whole training set reach about 0.88 class accuracy and 0.97 on the
upper-body question on the test set.
"""
import os

import numpy as np

import tensornet as tn
from tensornet.datasets import fashion_mnist
from tensornet.layers import Add, Dense, Dropout, Input
from tensornet.models import Model
from tensornet.optimizers import SGD

UPPER_BODY = (0, 2, 4, 6)  # T-shirt/top, Pullover, Coat, Shirt
epochs = int(os.environ.get("EPOCHS", 5))
train_examples = int(os.environ.get("TRAIN_EXAMPLES", 60000))

(x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
x_train = x_train[:train_examples].reshape(-1, 784).astype("float32") / 255
y_train = y_train[:train_examples]
x_test = x_test.reshape(-1, 784).astype("float32") / 255


def targets(labels):
    return {"garment": tn.utils.to_categorical(labels, 10),
            "upper": np.isin(labels, UPPER_BODY).astype("float32").reshape(-1, 1)}


image = Input(shape=(784,), name="image")
h1 = Dense(256, activation="relu", name="trunk")(image)
h2 = Add(name="skip")([h1, Dense(256, activation="relu", name="residual")(Dropout(0.2)(h1))])
garment = Dense(10, activation="softmax", name="garment")(h2)
upper = Dense(1, activation="sigmoid", name="upper")(h2)
model = Model(inputs=image, outputs=[garment, upper], name="two_heads", seed=0)
model.summary()

model.compile(optimizer=SGD(lr=0.05, momentum=0.9, nesterov=True),
              loss={"garment": "categorical_crossentropy", "upper": "binary_crossentropy"},
              loss_weights={"garment": 1.0, "upper": 0.5},
              metrics={"garment": ["accuracy"], "upper": ["accuracy"]})
history = model.fit(x_train, targets(y_train), batch_size=128, epochs=epochs, verbose=2,
                    validation_split=0.1)
results = dict(zip(["loss", "garment_loss", "upper_loss", "garment_accuracy", "upper_accuracy"],
                   model.evaluate(x_test, targets(y_test), verbose=0)))
print("Test loss:", round(results["loss"], 4))
print("Test garment accuracy:", round(results["garment_accuracy"], 4))
print("Test upper-body accuracy:", round(results["upper_accuracy"], 4))
