"""keras/examples/mnist_mlp.py (Keras 2.x), verbatim except for its imports: ``keras`` ->
``tensornet``, and the MNIST loader -> Fashion-MNIST (``fashion_mnist as mnist``), which Debian
ships. Run: ``python examples/keras2_mnist_mlp.py`` (``EPOCHS=2`` for a quick look)."""
from __future__ import print_function

import os

import tensornet as keras
from tensornet.datasets import fashion_mnist as mnist
from tensornet.models import Sequential
from tensornet.layers import Dense, Dropout
from tensornet.optimizers import SGD

batch_size = 128
num_classes = 10
epochs = int(os.environ.get("EPOCHS", 10))  # the original: epochs = 20

# the data, split between train and test sets
(x_train, y_train), (x_test, y_test) = mnist.load_data()

x_train = x_train.reshape(60000, 784)
x_test = x_test.reshape(10000, 784)
x_train = x_train.astype('float32')
x_test = x_test.astype('float32')
x_train /= 255
x_test /= 255
print(x_train.shape[0], 'train samples')
print(x_test.shape[0], 'test samples')

# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = Sequential()
model.add(Dense(512, activation='relu', input_shape=(784,)))
model.add(Dropout(0.2))
model.add(Dense(512, activation='relu'))
model.add(Dropout(0.2))
model.add(Dense(num_classes, activation='softmax'))

model.summary()

model.compile(loss='categorical_crossentropy',
              optimizer=SGD(lr=0.05, momentum=0.9, decay=1e-4, nesterov=True),
              metrics=['accuracy'])

history = model.fit(x_train, y_train,
                    batch_size=batch_size,
                    epochs=epochs,
                    verbose=1,
                    validation_data=(x_test, y_test))
score = model.evaluate(x_test, y_test, verbose=0)
print('Test loss:', score[0])
print('Test accuracy:', score[1])
