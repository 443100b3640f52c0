# Read by gunicorn from the working directory (make run, the Docker image, tests).
# No control socket: its default is one fixed path in the home folder
# (~/.gunicorn/gunicorn.ctl), which two stacks on one machine would share; nothing
# here uses gunicornc.
control_socket_disable = True
