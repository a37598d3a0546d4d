# socialpulse on the official Airflow image: the project's locked requirements on top,
# following "Extending the image" of the Airflow Docker stack docs. The image carries the
# DAGs, plugins and package, so a worker on another host needs nothing but this image;
# docker-compose.yaml mounts ./dags, ./plugins and ./include over them for development.
FROM apache/airflow:3.3.2-python3.11

# the folders the compose file's named volumes are mounted on: a new named volume takes
# the owner and mode of the image's folder, and every container runs as
# ${AIRFLOW_UID}:0, so they belong to airflow:root and are group-writable
USER root
RUN mkdir -p /opt/socialpulse/data /opt/airflow/logs /opt/airflow/auth \
    && chown airflow:root /opt/socialpulse /opt/socialpulse/data /opt/airflow/logs \
        /opt/airflow/auth \
    && chmod 775 /opt/socialpulse/data /opt/airflow/logs \
    && chmod 770 /opt/airflow/auth
USER airflow

# the full lock; naming apache-airflow==${AIRFLOW_VERSION} (set by the base image) makes
# pip refuse any resolution that would up- or downgrade Airflow itself
COPY --chown=airflow:root requirements.txt /opt/socialpulse/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
    -r /opt/socialpulse/requirements.txt

# the project itself, editable and without dependencies (they all come from the lock):
# the package is imported from /opt/socialpulse/include, where compose may mount ./include
COPY --chown=airflow:root pyproject.toml README.md /opt/socialpulse/
COPY --chown=airflow:root include /opt/socialpulse/include
RUN pip install --no-cache-dir --no-deps -e /opt/socialpulse
COPY --chown=airflow:root dags /opt/socialpulse/dags
COPY --chown=airflow:root plugins /opt/socialpulse/plugins

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/socialpulse/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/socialpulse/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=false \
    SOCIALPULSE_DATA_DIR=/opt/socialpulse/data
