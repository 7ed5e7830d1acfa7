package cn.sandan.examples.subscriber;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * An agency's subscriber to sandan's topics: a complete example (docs/subscribing.md).
 *
 * <p>Connection from the environment: KAFKA_BOOTSTRAP_SERVERS, and for the county cluster
 * KAFKA_SECURITY_PROTOCOL=SASL_SSL, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD (SCRAM-SHA-512) and KAFKA_SSL_CA_FILE
 * (the cluster CA, PEM). At least once: offsets are committed only after the events are recorded. Deduplication
 * by {@code event_id}: the ids already handled are kept in a file (one per line, flushed to disk before the
 * offsets move), so a redelivery is recognised and skipped, also after a restart. A tolerant reader: unknown
 * fields are ignored, a record that is not a sandan envelope is reported and skipped.
 *
 * <p>Each record prints one line: {@code event <event_id> <type> v<schema_version> key=<key>
 * <topic>/<partition>@<offset> ce_type=<CloudEvents type>}, or {@code duplicate ...}, or {@code skipped ...}. It
 * exits 1 with {@code error: <reason>} on stderr when the broker refuses it: a topic or group it has no access to
 * (a dead-letter topic, a group not starting with its user name), or credentials it does not accept.
 */
public final class Subscriber {
  /** Every public topic (not the dead letters: those are for sandan's operators). */
  static final List<String> TOPICS = List.of(
      "intake.demands.v1", "dispatch.roster.v1", "dispatch.orders.v1", "dispatch.activities.v1",
      "scoring.points.v1", "scoring.notices.v1", "notify.deliveries.v1");

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Set<String> handled = new HashSet<>();
  private final Path dedupFile;

  Subscriber(Path dedupFile) throws IOException {
    this.dedupFile = dedupFile;
    if (Files.exists(dedupFile)) {
      handled.addAll(Files.readAllLines(dedupFile, StandardCharsets.UTF_8));
    }
  }

  static Properties kafkaConfig(String group) {
    Map<String, String> env = System.getenv();
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, env.getOrDefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"));
    props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    // a new group reads every topic from its first event (event topics are kept forever)
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    String protocol = env.getOrDefault("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").toUpperCase();
    props.put("security.protocol", protocol);
    if (protocol.equals("SASL_SSL")) {
      props.put("sasl.mechanism", "SCRAM-SHA-512");
      props.put("sasl.jaas.config", String.format(
          "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"%s\" password=\"%s\";",
          env.get("KAFKA_SASL_USERNAME"), env.get("KAFKA_SASL_PASSWORD")));
    }
    String ca = env.get("KAFKA_SSL_CA_FILE");
    if (!protocol.equals("PLAINTEXT") && ca != null && !ca.isEmpty()) {
      props.put("ssl.truststore.type", "PEM");
      props.put("ssl.truststore.location", ca);
    }
    return props;
  }

  /** Handle one record; returns the line to print. Records the event id in {@code fresh} when it is new. */
  String handle(ConsumerRecord<String, byte[]> record, List<String> fresh) {
    String where = record.topic() + "/" + record.partition() + "@" + record.offset();
    Header ceType = record.headers().lastHeader("ce_type");
    JsonNode envelope;
    try {
      envelope = JSON.readTree(record.value());
    } catch (IOException e) {
      return "skipped " + where + ": not JSON";
    }
    if (envelope == null || !envelope.hasNonNull("event_id") || !envelope.hasNonNull("type")
        || !envelope.path("data").isObject()) {
      return "skipped " + where + ": not a sandan envelope";
    }
    String eventId = envelope.get("event_id").asText();
    String line = eventId + " " + envelope.get("type").asText() + " v" + envelope.path("schema_version").asInt()
        + " key=" + envelope.path("key").asText() + " " + where + " ce_type="
        + (ceType == null ? "-" : new String(ceType.value(), StandardCharsets.UTF_8));
    if (!handled.add(eventId)) {
      return "duplicate " + line;
    }
    // The application's own work goes here, e.g. on "OrderOverdue"; fields it does not know are ignored.
    fresh.add(eventId);
    return "event " + line;
  }

  /** Make the new ids durable: after this, the offsets may move. */
  void remember(List<String> fresh) throws IOException {
    if (fresh.isEmpty()) {
      return;
    }
    Files.write(dedupFile, fresh, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND,
        StandardOpenOption.WRITE, StandardOpenOption.SYNC);
  }

  int run(List<String> topics, String group, long maxRecords, Duration timeout) throws IOException {
    long seen = 0;
    long deadline = System.nanoTime() + timeout.toNanos();
    try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(kafkaConfig(group))) {
      consumer.subscribe(topics);
      while (seen < maxRecords && System.nanoTime() < deadline) {
        ConsumerRecords<String, byte[]> records = consumer.poll(Duration.ofMillis(500));
        List<String> fresh = new ArrayList<>();
        Map<TopicPartition, OffsetAndMetadata> done = new java.util.HashMap<>();
        for (ConsumerRecord<String, byte[]> record : records) {
          if (seen >= maxRecords) {
            break;  // the rest is read again by the next run: their offsets are not committed
          }
          System.out.println(handle(record, fresh));
          done.put(new TopicPartition(record.topic(), record.partition()),
              new OffsetAndMetadata(record.offset() + 1));
          seen++;
        }
        remember(fresh);  // at least once: the ids are on disk before the offsets move
        if (!done.isEmpty()) {
          consumer.commitSync(done);
        }
      }
    }
    System.out.println("done: " + seen + " record(s)");
    System.out.flush();
    return 0;
  }

  private static void usage() {
    System.err.println("usage: Subscriber --group GROUP [--topic TOPIC]... [--dedup-file FILE]"
        + " [--max-records N] [--timeout SECONDS]");
  }

  public static void main(String[] args) throws IOException {
    String group = null;
    List<String> topics = new ArrayList<>();
    Path dedupFile = Path.of("sandan-handled-ids.txt");
    long maxRecords = Long.MAX_VALUE;
    Duration timeout = Duration.ofDays(36500);
    for (int i = 0; i < args.length; i++) {
      String value = i + 1 < args.length ? args[i + 1] : null;
      if (value == null) {
        usage();
        System.exit(2);
      }
      switch (args[i]) {
        case "--group" -> group = value;
        case "--topic" -> topics.add(value);
        case "--dedup-file" -> dedupFile = Path.of(value);
        case "--max-records" -> maxRecords = Long.parseLong(value);
        case "--timeout" -> timeout = Duration.ofMillis((long) (Double.parseDouble(value) * 1000));
        default -> {
          usage();
          System.exit(2);
        }
      }
      i++;
    }
    if (group == null) {
      usage();
      System.exit(2);
    }
    int code;
    try {
      code = new Subscriber(dedupFile).run(topics.isEmpty() ? TOPICS : topics, group, maxRecords, timeout);
    } catch (AuthorizationException | AuthenticationException e) {
      // no retry mends these: the user lacks an ACL, or its credentials are refused
      System.err.println("error: " + e.getClass().getSimpleName() + ": " + e.getMessage());
      code = 1;
    }
    System.exit(code);
  }
}
