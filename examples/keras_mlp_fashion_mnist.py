'''Keras' classic MLP example (keras/examples/mnist_mlp.py) on Fashion-MNIST, run by tensornet.

Only the imports differ from the Keras script (and the data set is Fashion-MNIST, 5 epochs):

    import keras                                  ->  import tensornet as keras
    from keras.datasets import fashion_mnist      ->  from tensornet.datasets import fashion_mnist
    from keras.models import Sequential           ->  from tensornet.models import Sequential
    from keras.layers import Dense, Dropout       ->  from tensornet.layers import Dense, Dropout
    from keras.optimizers import RMSprop          ->  from tensornet.optimizers import RMSprop

Gets to about 0.87 test accuracy in 5 epochs.
'''

from __future__ import print_function

import tensornet as keras
from tensornet.datasets import fashion_mnist
from tensornet.models import Sequential
from tensornet.layers import Dense, Dropout
from tensornet.optimizers import RMSprop

batch_size = 128
num_classes = 10
epochs = 5

# the data, split between train and test sets
(x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()

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
              optimizer=RMSprop(),
              metrics=['accuracy'])

history = model.fit(x_train, y_train,
                    batch_size=batch_size,
                    epochs=epochs,
                    verbose=1,
                    validation_data=(x_test, y_test))
score = model.evaluate(x_test, y_test, verbose=0)
print('Test loss:', score[0])
print('Test accuracy:', score[1])
