# socialpulse on the official Airflow image: the project's locked requirements on top.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /opt/socialpulse/requirements.txt
RUN pip install --no-cache-dir -r /opt/socialpulse/requirements.txt
COPY --chown=airflow:root pyproject.toml README.md /opt/socialpulse/
COPY --chown=airflow:root include /opt/socialpulse/include
RUN pip install --no-cache-dir --no-deps -e /opt/socialpulse
