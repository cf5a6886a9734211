"""keras/examples/mnist_cnn.py (Keras 2.x), verbatim except for its imports: ``keras`` ->
``tensornet``, and the MNIST loader -> Fashion-MNIST (``fashion_mnist as mnist``), which Debian
ships; Adadelta's learning rate is written out as 1.0, Keras 2's default (Keras 3 and tensornet
default to 0.001). Run: ``python examples/mnist_cnn.py`` (``EPOCHS=1`` for a quick look).

Trains a simple convnet: Conv(32, 3x3) - Conv(64, 3x3) - MaxPool(2) - Dropout(0.25) - Flatten -
Dense(128) - Dropout(0.5) - Dense(10).
"""
from __future__ import print_function

import os

import tensornet as keras
from tensornet.datasets import fashion_mnist as mnist
from tensornet.models import Sequential
from tensornet.layers import Dense, Dropout, Flatten
from tensornet.layers import Conv2D, MaxPooling2D
from tensornet import backend as K

batch_size = 128
num_classes = 10
epochs = int(os.environ.get("EPOCHS", 12))

# input image dimensions
img_rows, img_cols = 28, 28

# the data, split between train and test sets
(x_train, y_train), (x_test, y_test) = mnist.load_data()

if K.image_data_format() == 'channels_first':
    x_train = x_train.reshape(x_train.shape[0], 1, img_rows, img_cols)
    x_test = x_test.reshape(x_test.shape[0], 1, img_rows, img_cols)
    input_shape = (1, img_rows, img_cols)
else:
    x_train = x_train.reshape(x_train.shape[0], img_rows, img_cols, 1)
    x_test = x_test.reshape(x_test.shape[0], img_rows, img_cols, 1)
    input_shape = (img_rows, img_cols, 1)

x_train = x_train.astype('float32')
x_test = x_test.astype('float32')
x_train /= 255
x_test /= 255
print('x_train shape:', x_train.shape)
print(x_train.shape[0], 'train samples')
print(x_test.shape[0], 'test samples')

# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3),
                 activation='relu',
                 input_shape=input_shape))
model.add(Conv2D(64, (3, 3), activation='relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Flatten())
model.add(Dense(128, activation='relu'))
model.add(Dropout(0.5))
model.add(Dense(num_classes, activation='softmax'))

model.compile(loss=keras.losses.categorical_crossentropy,
              optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
              metrics=['accuracy'])

model.fit(x_train, y_train,
          batch_size=batch_size,
          epochs=epochs,
          verbose=1,
          validation_data=(x_test, y_test))
score = model.evaluate(x_test, y_test, verbose=0)
print('Test loss:', score[0])
print('Test accuracy:', score[1])
